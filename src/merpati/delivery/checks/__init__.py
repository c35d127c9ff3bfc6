"""Content and sender checks on receipt: a staged pipeline of checks with typed results.

* ``results``: the vocabulary (accept, reject, tempfail, quarantine, add_score, add_headers).
* ``context``: what a check sees (``CheckContext``) and the stages.
* ``pipeline``: ``CheckPipeline`` (per server) and ``CheckSession`` (per connection).
* ``verdict``: the decision and the ``X-Spam-Status`` / ``Merpati-Verdict`` headers.
* built-in checks: ``helo``, ``iprev``, ``dnsbl``, ``greylist``, ``pregreet``, ``sender_auth``,
  ``bayes`` (with ``training``), and the engines ``rspamd`` and ``clamav``; site ``hooks``.
* ``build``: the whole pipeline from the ``[checks]`` configuration.

See docs/checks.md.
"""

from merpati.delivery.checks.results import (
    Action,
    CheckUnavailable,
    Result,
    accept,
    add_headers,
    add_score,
    quarantine,
    reject,
    tempfail,
)

__all__ = [
    "Action",
    "CheckUnavailable",
    "Result",
    "accept",
    "add_headers",
    "add_score",
    "quarantine",
    "reject",
    "tempfail",
]
