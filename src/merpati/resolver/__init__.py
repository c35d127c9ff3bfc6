"""DNS as an injected protocol: :class:`Resolver`, its dnspython implementation, a fake for
tests, and next-hop (MX) selection for outbound mail. Imports only ``core``."""

from .api import (
    DnsError,
    DnsPermError,
    DnsTempError,
    DnsTimeout,
    IPAddress,
    MxRecord,
    NoData,
    NxDomain,
    Resolver,
    normalize_name,
    reverse_name,
)
from .dnspython import DnsPythonResolver, parse_nameserver
from .fake import FakeResolver
from .nexthop import (
    Hop,
    NextHopError,
    NextHopPermError,
    NextHops,
    NextHopTempError,
    NullMx,
    next_hops,
    parse_domain_literal,
)

__all__ = [
    "DnsError",
    "DnsPermError",
    "DnsPythonResolver",
    "DnsTempError",
    "DnsTimeout",
    "FakeResolver",
    "Hop",
    "IPAddress",
    "MxRecord",
    "NextHopError",
    "NextHopPermError",
    "NextHopTempError",
    "NextHops",
    "NoData",
    "NullMx",
    "NxDomain",
    "Resolver",
    "next_hops",
    "normalize_name",
    "parse_domain_literal",
    "parse_nameserver",
    "reverse_name",
]
