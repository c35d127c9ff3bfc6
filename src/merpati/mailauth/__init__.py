"""Sender authentication: SPF, DKIM, DMARC and Authentication-Results, as functions of
(message, envelope, :class:`~merpati.resolver.Resolver`). Imports core, mime, resolver."""
