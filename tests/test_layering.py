"""The ledger package stays domain-agnostic: an ``ast`` walk over its sources.

- nothing under ``ledger/`` imports ``governance`` or ``app`` (absolute,
  relative, or through ``importlib.import_module`` / ``__import__`` with a
  literal name), at module level or inside functions;
- only ``ledger/signing.py`` imports ``cryptography``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LEDGER = ROOT / "ledger"
LEDGER_FILES = sorted(LEDGER.rglob("*.py"))
FORBIDDEN = ("governance", "app")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, source: str | None = None) -> set[str]:
    """Every absolute module name the file imports, relative imports resolved.

    ``from X import y`` yields both ``X`` and ``X.y`` (y may be a submodule).
    """
    if source is None:
        source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".") if package else []
                if node.level - 1 > len(base_parts):
                    base = ""  # beyond the top: would be an error at runtime
                else:
                    base = ".".join(base_parts[: len(base_parts) - (node.level - 1)])
                base = ".".join(p for p in (base, node.module or "") if p)
            else:
                base = node.module or ""
            if base:
                found.add(base)
            found.update(".".join(p for p in (base, alias.name) if p) for alias in node.names)
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in ("import_module", "__import__") and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    found.add(first.value.lstrip("."))
    return found


def top_level(name: str) -> str:
    return name.split(".", 1)[0]


def is_forbidden(name: str) -> bool:
    """The application's packages, however reached ("ledger.governance" from a
    stray relative import counts too: the layer must not even look like it)."""
    return top_level(name) in FORBIDDEN or "governance" in name.split(".")


def test_walk_sees_every_ledger_module():
    names = {p.name for p in LEDGER_FILES}
    assert {"__init__.py", "canonical.py", "merkle.py", "proofs.py", "signing.py", "checkpoint.py"} <= names
    assert len(LEDGER_FILES) >= 15


def test_resolver_on_known_shapes():
    """The walk itself must catch the forms it claims to (else it proves nothing)."""
    source = (
        "import os\n"
        "from . import merkle\n"
        "from .errors import X\n"
        "from .. import governance\n"
        "from ..app import create_app\n"
        "def f():\n"
        "    import governance.tables\n"
        "    importlib.import_module('app')\n"
        "    from cryptography.hazmat import primitives\n"
    )
    init_found = imported_modules(LEDGER / "__init__.py", "from .governance import x\nfrom . import api\n")
    assert init_found == {"ledger.governance", "ledger.governance.x", "ledger", "ledger.api"}
    assert is_forbidden("ledger.governance") and is_forbidden("app.create_app")
    assert not is_forbidden("flask.app") and not is_forbidden("ledger.api")
    found = imported_modules(LEDGER / "canonical.py", source)
    assert {"os", "ledger", "ledger.merkle", "ledger.errors", "ledger.errors.X", "governance",
            "app", "app.create_app", "governance.tables", "cryptography.hazmat"} <= found
    assert {top_level(n) for n in found} >= {"governance", "app", "cryptography"}


@pytest.mark.parametrize("path", LEDGER_FILES, ids=[str(p.relative_to(ROOT)) for p in LEDGER_FILES])
def test_ledger_does_not_import_the_application(path):
    bad = sorted(n for n in imported_modules(path) if is_forbidden(n))
    assert bad == [], f"{path.relative_to(ROOT)} imports {bad}"


@pytest.mark.parametrize("path", LEDGER_FILES, ids=[str(p.relative_to(ROOT)) for p in LEDGER_FILES])
def test_only_signing_imports_cryptography(path):
    uses = sorted(n for n in imported_modules(path) if top_level(n) == "cryptography")
    if path == LEDGER / "signing.py":
        assert uses, "ledger/signing.py is where Ed25519 lives; it must import cryptography"
    else:
        assert uses == [], f"{path.relative_to(ROOT)} imports {uses}"
