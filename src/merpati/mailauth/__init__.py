"""Sender authentication: SPF, DKIM, DMARC and Authentication-Results, as functions of
(message, envelope, :class:`~merpati.resolver.Resolver`). Imports core, mime, resolver.

Entry points:

* ``verify_message(resolver, raw, client_ip, helo, mail_from, authserv_id) -> AuthVerdict``
  (on receipt; then ``remove_authentication_results`` and prepend ``verdict.header``);
* ``DkimSigner(domain, selector, pem).sign(message) -> b"DKIM-Signature: ...\\r\\n"`` and
  ``generate_key("rsa" | "ed25519") -> (pem, txt)`` (on sending);
* the single checks: ``check_spf``, ``check_spf_helo``, ``verify_dkim``, ``check_dmarc``.
"""

from .authresults import authentication_results, authserv_id_of, remove_authentication_results
from .dkim import DEFAULT_SIGNED_HEADERS, DkimResult, DkimSigner, DkimVerdict, generate_key, verify_dkim
from .dmarc import (
    DmarcLookup,
    DmarcRecord,
    DmarcResult,
    DmarcVerdict,
    check_dmarc,
    evaluate_dmarc,
    lookup_dmarc,
    organizational_domain,
    parse_dmarc_record,
)
from .spf import SpfResult, SpfVerdict, check_spf, check_spf_helo
from .verify import AuthVerdict, FromDomainError, author_domains, verify_message

__all__ = [
    "DEFAULT_SIGNED_HEADERS",
    "AuthVerdict",
    "DkimResult",
    "DkimSigner",
    "DkimVerdict",
    "DmarcLookup",
    "DmarcRecord",
    "DmarcResult",
    "DmarcVerdict",
    "FromDomainError",
    "SpfResult",
    "SpfVerdict",
    "authentication_results",
    "author_domains",
    "authserv_id_of",
    "check_dmarc",
    "check_spf",
    "check_spf_helo",
    "evaluate_dmarc",
    "generate_key",
    "lookup_dmarc",
    "organizational_domain",
    "parse_dmarc_record",
    "remove_authentication_results",
    "verify_dkim",
    "verify_message",
]
