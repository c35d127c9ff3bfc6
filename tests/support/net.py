"""Loopback addresses and ports for tests: nothing here may touch a non-loopback address.

Every xdist worker gets its own loopback address (127.1.N.2 for worker gwN, 127.1.250.2 when
not under xdist), so two workers never race for the same host:port. Ports come from binding to
port 0 on that address, so two servers on one worker never collide either.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import time

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


def worker_index() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw") and worker[2:].isdigit():
        return int(worker[2:]) % 250
    return 250


def worker_address(role: int = 2) -> str:
    """This worker's loopback address for a server role (2: Merpati, 3: a peer, ...)."""
    return f"127.1.{worker_index()}.{role}"


def assert_loopback(host: str) -> None:
    if ipaddress.ip_address(host) not in LOOPBACK:
        raise AssertionError(f"{host} is not a loopback address; tests must stay on 127.0.0.0/8")


def free_port(host: str) -> int:
    """A port nobody listens on at ``host`` right now (the kernel's choice, never a guess)."""
    assert_loopback(host)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for_banner(host: str, port: int, *, timeout: float, alive=lambda: True) -> bytes:
    """Connect until the server greets with 220; returns the banner line. ``alive`` is polled
    so a server that died during start-up fails at once instead of after the timeout."""
    assert_loopback(host)
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError("the server process exited during start-up")
        try:
            with socket.create_connection((host, port), timeout=2) as s:
                s.settimeout(5)
                data = b""
                while b"\r\n" not in data:
                    chunk = s.recv(1024)
                    if not chunk:
                        break
                    data += chunk
                if data.startswith(b"220"):
                    try:
                        s.sendall(b"QUIT\r\n")
                    except OSError:
                        pass
                    return data.split(b"\r\n", 1)[0]
                last = RuntimeError(f"unexpected greeting {data!r}")
        except OSError as exc:
            last = exc
        time.sleep(0.05)
    raise TimeoutError(f"no 220 banner from {host}:{port} within {timeout}s (last: {last})")
