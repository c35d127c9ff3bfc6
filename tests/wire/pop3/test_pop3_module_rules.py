"""Architecture rules for the POP3 engine: no module-level mutable state, size budgets, independence."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path
from types import ModuleType

import merpati.services.pop3
import merpati.wire.pop3

MUTABLE = (dict, list, set, bytearray)


def modules() -> list[ModuleType]:
    found: list[ModuleType] = []
    for package in (merpati.wire.pop3, merpati.services.pop3):
        found.append(package)
        for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
            found.append(importlib.import_module(info.name))
    found.append(importlib.import_module("merpati.net.pop3"))
    return found


def test_no_module_level_mutable_state() -> None:
    bad = [
        f"{m.__name__}.{name}"
        for m in modules()
        for name, value in vars(m).items()
        if not name.startswith("__") and isinstance(value, MUTABLE)
    ]
    assert not bad, bad


def test_functions_stay_small_and_modules_under_600_lines() -> None:
    for module in modules():
        path = Path(module.__file__ or "")
        text = path.read_text(encoding="utf-8")
        assert text.count("\n") <= 600, path
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                assert length <= 60, f"{path.name}:{node.name} has {length} lines"


def test_engines_share_nothing() -> None:
    a, b = merpati.wire.pop3.Pop3Server(), merpati.wire.pop3.Pop3Server()
    a.receive_data(b"CAPA")
    assert a.buffered == b"CAPA" and b.buffered == b""
