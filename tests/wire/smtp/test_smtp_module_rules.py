"""Architecture rules for the SMTP engine: no module-level mutable state, size budgets."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path
from types import ModuleType

import merpati.core.address
import merpati.wire.smtp

MUTABLE = (dict, list, set, bytearray)


def modules() -> list[ModuleType]:
    found = [merpati.core.address, merpati.wire.smtp]
    for info in pkgutil.iter_modules(merpati.wire.smtp.__path__, "merpati.wire.smtp."):
        found.append(importlib.import_module(info.name))
    return found


def test_no_module_level_mutable_state() -> None:
    bad = []
    for module in modules():
        for name, value in vars(module).items():
            if name.startswith("__"):
                continue
            if isinstance(value, MUTABLE):
                bad.append(f"{module.__name__}.{name}")
    assert not bad, bad


def test_functions_stay_small() -> None:
    # STYLE.md pitfall 1: functions ≤ 60 lines
    for module in modules():
        path = Path(module.__file__ or "")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                assert length <= 60, f"{path.name}:{node.name} has {length} lines"


def test_engine_instances_share_nothing() -> None:
    from merpati.wire.smtp import SmtpServer

    a, b = SmtpServer(hostname="a.test"), SmtpServer(hostname="b.test")
    a.greeting()
    b.greeting()
    a.receive_data(b"EHLO x\r\n")
    assert b.buffered == b"" and a.buffered == b"EHLO x\r\n"
