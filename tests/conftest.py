"""Suite-wide pytest configuration.

* Under CI (``CI=true``, as `.ci/run` sets it) a skipped test is a FAILED test: the CI run
  must prove everything, so a missing tool or service cannot pass silently.
* ``merpati``: one real `merpati serve` subprocess per test module (module scope), on this
  xdist worker's own loopback address and a kernel-chosen port. A module tunes it with
  ``MERPATI_OPTIONS = {...}`` (keyword arguments of ``MerpatiServer``). Tests create their own
  users with ``merpati.new_user()`` so they never share a mailbox.
* ``merpati_factory``: for tests that need their own server (restarts, SIGKILL).
* A failing test that used a server gets the tail of that server's log in its report.

Nothing here is global state shared between xdist workers: addresses derive from the worker id
and ports from binding to port 0.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `import support` from any test folder

from support.merpati_server import DEFAULT_DOMAIN, MerpatiServer  # noqa: E402
from support.net import worker_address  # noqa: E402


def running_under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}


def _skip_reason(longrepr: object) -> str:
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.skipped and not hasattr(report, "wasxfail") and running_under_ci():
        reason = _skip_reason(report.longrepr)
        report.outcome = "failed"
        report.longrepr = (
            f"SKIPPED UNDER CI=true, which counts as a failure: {reason}\n"
            "CI must run every test; install what is missing (`make test-deps`) or fix the test."
        )
    if report.failed:
        for server in _servers_of(item):
            report.sections.append(
                (f"merpati server log tail ({server.host}:{server.port}, {server.log_path})", server.log_tail())
            )
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    report = yield
    if report.skipped and running_under_ci():
        report.outcome = "failed"
        report.longrepr = (
            f"module skipped under CI=true, which counts as a failure: {_skip_reason(report.longrepr)}"
        )
    return report


def _servers_of(item: pytest.Item) -> list[MerpatiServer]:
    funcargs = getattr(item, "funcargs", {}) or {}
    servers: list[MerpatiServer] = []
    for value in funcargs.values():
        if isinstance(value, MerpatiServer):
            servers.append(value)
        elif isinstance(value, ServerFactory):
            servers.extend(value.servers)
    return servers


class ServerFactory:
    """Makes MerpatiServer instances (not started) under one temp folder; stops them all at the end."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.servers: list[MerpatiServer] = []

    def __call__(self, *, domains: tuple[str, ...] = (DEFAULT_DOMAIN,), **options) -> MerpatiServer:
        options.setdefault("host", worker_address(2))
        server = MerpatiServer(self.root / f"server{len(self.servers)}", **options)
        self.servers.append(server)
        for domain in domains:
            server.add_domain(domain)
        return server

    def close(self) -> None:
        for server in self.servers:
            server.stop()


@pytest.fixture
def merpati_factory(tmp_path: Path):
    factory = ServerFactory(tmp_path)
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture(scope="module")
def merpati(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    options = dict(getattr(request.module, "MERPATI_OPTIONS", {}))
    domains = options.pop("domains", (DEFAULT_DOMAIN,))
    options.setdefault("host", worker_address(2))
    server = MerpatiServer(tmp_path_factory.mktemp("merpati"), **options)
    for domain in domains:
        server.add_domain(domain)
    server.start()
    try:
        yield server
    finally:
        code = server.stop()
        if code not in (0, None):
            pytest.fail(
                f"merpati serve exited {code} after SIGTERM (expected a graceful 0)\n{server.log_tail()}",
                pytrace=False,
            )
