"""What every part of the server is built from; created once per ``app.run``."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Protocol

from merpati.config import Config
from merpati.delivery.pipeline import InboundPipeline
from merpati.delivery.routing import Router
from merpati.services.auth import Authenticator
from merpati.storage.api import MailStore


class Stoppable(Protocol):
    """A started listener or background service."""

    async def stop(self, grace: float) -> None: ...


@dataclass
class AppContext:
    config: Config
    store: MailStore
    tls: ssl.SSLContext | None
    authenticator: Authenticator
    router: Router
    pipeline: InboundPipeline
    main_process: bool = True  # False in an SMTP worker process (it serves only the MX listeners)
    processes: int = 1  # processes serving SMTP (the main one and its workers): >1 binds with SO_REUSEPORT
    worker: int | None = None  # the index of this SMTP worker process (None: the main process)
