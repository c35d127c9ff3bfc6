"""DESIGN.md's import rules, enforced: data flows one way through the layers."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "merpati"

# package → the merpati packages it may import (besides itself)
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "wire": {"core"},
    "mime": {"core"},
    "resolver": {"core"},
    "mailauth": {"core", "mime", "resolver"},
    "storage": {"core", "mime"},
    "delivery": {"core", "mime", "mailauth", "storage", "resolver", "wire"},
    "queue": {"core", "mime", "mailauth", "resolver", "storage", "wire", "delivery"},
    "services": {"core", "wire", "mime", "storage", "delivery", "queue", "mailauth", "resolver"},
    "net": {"core", "wire", "services", "delivery", "config"},
    "config": {"core"},
}
IO_MODULES = {"asyncio", "socket", "ssl", "selectors"}


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_layers_import_only_what_design_allows() -> None:
    problems = []
    for package, allowed in ALLOWED.items():
        folder = SRC / package
        if not folder.exists():
            continue
        for path in folder.rglob("*.py"):
            for name in imports(path):
                parts = name.split(".")
                if parts[0] != "merpati" or len(parts) < 2:
                    continue
                target = parts[1]
                if target != package and target not in allowed:
                    problems.append(f"{path.relative_to(SRC)} imports {name}")
    assert not problems, "\n".join(problems)


def test_wire_is_sans_io() -> None:
    bad = []
    for path in (SRC / "wire").rglob("*.py"):
        used = {n.split(".")[0] for n in imports(path)}
        if used & IO_MODULES:
            bad.append(f"{path.relative_to(SRC)}: {sorted(used & IO_MODULES)}")
    assert not bad, "\n".join(bad)


def test_only_net_and_app_open_sockets() -> None:
    bad = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC)
        if rel.parts[0] in {"net", "cli", "admin"} or rel.name == "app.py":
            continue
        text = path.read_text(encoding="utf-8")
        if "start_server" in text or "create_server" in text:
            bad.append(str(rel))
    assert not bad, bad
