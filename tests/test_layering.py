"""The layers stay as docs/architecture.md draws them: an ``ast`` walk over every import.

- ``ledger`` never imports ``governance`` or ``app`` (absolute, relative, or
  through ``importlib.import_module`` / ``__import__`` with a literal name),
  at module level or inside functions;
- Flask, Werkzeug, webargs, flask-smorest and click are imported only by the
  adapter sub-packages (``ledger/http``, ``ledger/cli``, ``governance/api``,
  ``governance/web``, ``governance/cli``) and ``app.py``;
- no library module imports an adapter;
- the sub-packages (and top-level modules) of ``ledger`` and ``governance``
  import each other without cycles;
- every package's ``__init__`` says in its docstring what it owns and what it
  may import;
- only ``ledger/signing.py`` imports ``cryptography``.

Each rule is a function over a list of files, so the tests at the end run it
on a small tree with deliberate violations too: a rule that reports nothing
there would prove nothing here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LIBRARIES = ("ledger", "governance")
ADAPTERS = ("ledger.http", "ledger.cli", "governance.api", "governance.web", "governance.cli")
WEB_FRAMEWORKS = ("flask", "werkzeug", "webargs", "flask_smorest", "click")


def project_files(root: Path = ROOT) -> list[Path]:
    """The Python files of the libraries, and ``app.py``."""
    files = [p for lib in LIBRARIES for p in sorted((root / lib).rglob("*.py"))]
    return files + ([root / "app.py"] if (root / "app.py").exists() else [])


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, source: str | None = None, root: Path = ROOT) -> set[str]:
    """Every absolute module name the file imports, relative imports resolved.

    ``from X import y`` yields both ``X`` and ``X.y`` (y may be a submodule).
    """
    if source is None:
        source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(path))
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
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
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if called in ("import_module", "__import__") and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    found.add(first.value.lstrip("."))
    return found


def top_level(name: str) -> str:
    return name.split(".", 1)[0]


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def is_adapter(name: str) -> bool:
    return any(within(name, adapter) for adapter in ADAPTERS)


def unit_of(name: str, known: set[str]) -> str | None:
    """The sub-package (``governance.gate``) or top-level module (``ledger.log``) a module belongs to.

    None for names outside the libraries, or that name no module (``from .x import SomeClass``).
    """
    if top_level(name) not in LIBRARIES or name not in known:
        return None
    return ".".join(name.split(".")[:2])


# -- the rules: each returns a list of violations as text ------------------------------

def _forbidden_imports(files, root: Path, applies, forbidden) -> list[str]:
    """``path imports name`` for each import ``forbidden(name)`` of a module ``applies(module)`` to."""
    bad = []
    for path in files:
        if applies(module_name(path, root)):
            names = sorted(n for n in imported_modules(path, root=root) if forbidden(n))
            bad += [f"{path.relative_to(root)} imports {n}" for n in names]
    return bad


def _library(name: str) -> bool:
    return name != "app" and not is_adapter(name)


def ledger_imports_application(files, root: Path = ROOT) -> list[str]:
    return _forbidden_imports(files, root, lambda m: within(m, "ledger"),
                              lambda n: top_level(n) in ("governance", "app") or "governance" in n.split("."))


def frameworks_outside_adapters(files, root: Path = ROOT) -> list[str]:
    return _forbidden_imports(files, root, _library, lambda n: top_level(n) in WEB_FRAMEWORKS)


def libraries_import_adapters(files, root: Path = ROOT) -> list[str]:
    return _forbidden_imports(files, root, _library, is_adapter)


def unit_cycles(files, root: Path = ROOT) -> list[str]:
    """Cycles in the graph of units (sub-packages and top-level modules), each named once."""
    known = {module_name(p, root) for p in files}
    edges: dict[str, set[str]] = {}
    for path in files:
        source = unit_of(module_name(path, root), known)
        if source is None:
            continue
        targets = {unit_of(n, known) for n in imported_modules(path, root=root)}
        edges.setdefault(source, set()).update(t for t in targets if t and t != source)
    cycles, done = [], set()

    def walk(unit, trail):
        if unit in trail:
            cycle = trail[trail.index(unit):]
            key = frozenset(cycle)
            if key not in done:
                done.add(key)
                cycles.append(" -> ".join(cycle + [unit]))
            return
        if unit in finished:
            return
        for target in sorted(edges.get(unit, ())):
            walk(target, trail + [unit])
        finished.add(unit)

    finished: set[str] = set()
    for unit in sorted(edges):
        walk(unit, [])
    return cycles


def undocumented_packages(files, root: Path = ROOT) -> list[str]:
    bad = []
    for path in files:
        if path.name != "__init__.py":
            continue
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        if len(doc.split()) < 12 or "import" not in doc:
            bad.append(f"{path.relative_to(root)}: the docstring must say what the package owns "
                       "and what it may import")
    return bad


def cryptography_outside_signing(files, root: Path = ROOT) -> list[str]:
    return _forbidden_imports(files, root, lambda m: m != "ledger.signing",
                              lambda n: top_level(n) == "cryptography")


RULES = (ledger_imports_application, frameworks_outside_adapters, libraries_import_adapters, unit_cycles,
         undocumented_packages, cryptography_outside_signing)


# -- the project keeps them ------------------------------------------------------

def test_the_walk_sees_the_whole_house():
    names = {module_name(p) for p in project_files()}
    assert {"app", "ledger", "ledger.log", "ledger.http", "ledger.http.endpoints", "ledger.cli",
            "governance", "governance.gate.decisions", "governance.api", "governance.web.pages",
            "governance.cli", "governance.projections.projector"} <= names
    assert len(names) >= 60


@pytest.mark.parametrize("rule", RULES, ids=[rule.__name__ for rule in RULES])
def test_the_project_keeps_the_rule(rule):
    assert rule(project_files()) == []


def test_signing_is_where_ed25519_lives():
    assert "cryptography.hazmat.primitives.asymmetric.ed25519" in imported_modules(ROOT / "ledger" / "signing.py")


# -- and each rule catches what it claims to ---------------------------------------

def test_resolver_on_known_shapes():
    """The import walk itself must see the forms it claims to (else it proves nothing)."""
    source = (
        "import os\n"
        "from . import merkle\n"
        "from .errors import X\n"
        "from .. import governance\n"
        "from ..app import create_app\n"
        "def f():\n"
        "    import governance.projections.tables\n"
        "    importlib.import_module('app')\n"
        "    from cryptography.hazmat import primitives\n"
    )
    init_found = imported_modules(ROOT / "ledger" / "__init__.py", "from .governance import x\nfrom . import log\n")
    assert init_found == {"ledger.governance", "ledger.governance.x", "ledger", "ledger.log"}
    found = imported_modules(ROOT / "ledger" / "canonical.py", source)
    assert {"os", "ledger", "ledger.merkle", "ledger.errors", "ledger.errors.X", "governance",
            "app", "app.create_app", "governance.projections.tables", "cryptography.hazmat"} <= found


VIOLATIONS = {
    "ledger/__init__.py": '"""The ledger library; it may import nothing of governance or Flask at all."""\n',
    "ledger/log.py": "def f():\n    from governance.registry import models\n",
    "ledger/store.py": "from flask import current_app\n",
    "ledger/http/__init__.py": '"""Adapter: Flask, and it may import the ledger library only, nothing else."""\n',
    "ledger/http/endpoints.py": "import flask\nfrom ..log import Ledger\n",
    "governance/__init__.py": '"""Too short."""\n',
    "governance/gate/__init__.py": '"""The gate room; it may import the registry and policy rooms below it."""\n',
    "governance/gate/decisions.py": "from ..api import errors\nfrom ..registry.models import model_subject\n",
    "governance/registry/__init__.py": '"""The registry room; it may import the projections room and the ledger."""\n',
    "governance/registry/models.py": "from werkzeug.exceptions import NotFound\nfrom ..gate import decisions\n",
    "governance/api/__init__.py": '"""The HTTP adapter of governance, which may import Flask and every governance room."""\n',
    "governance/api/errors.py": "from flask import request\nfrom ..gate import decisions\n",
    "governance/audit/trail.py": "from cryptography.hazmat.primitives import hashes\n",
}


@pytest.fixture
def violating_tree(tmp_path):
    for name, text in VIOLATIONS.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for package in ("governance/audit",):
        (tmp_path / package / "__init__.py").write_text(
            '"""The audit room; it may import the ledger library and the projections room."""\n')
    return tmp_path


def test_each_rule_catches_a_deliberate_violation(violating_tree):
    files = project_files(violating_tree)
    found = {rule.__name__: rule(files, violating_tree) for rule in RULES}
    assert found == {
        "ledger_imports_application": ["ledger/log.py imports governance.registry",
                                       "ledger/log.py imports governance.registry.models"],
        "frameworks_outside_adapters": ["ledger/store.py imports flask", "ledger/store.py imports flask.current_app",
                                        "governance/registry/models.py imports werkzeug.exceptions",
                                        "governance/registry/models.py imports werkzeug.exceptions.NotFound"],
        "libraries_import_adapters": ["governance/gate/decisions.py imports governance.api",
                                      "governance/gate/decisions.py imports governance.api.errors"],
        "unit_cycles": ["governance.api -> governance.gate -> governance.api",
                        "governance.gate -> governance.registry -> governance.gate"],
        "undocumented_packages": ["governance/__init__.py: the docstring must say what the package owns "
                                  "and what it may import"],
        "cryptography_outside_signing": ["governance/audit/trail.py imports cryptography.hazmat.primitives",
                                         "governance/audit/trail.py imports cryptography.hazmat.primitives.hashes"],
    }
