"""The project as a package: ``pip install .`` gives the operator commands and the pipeline client.

A wheel is built from a copy of the checkout (the build writes ``build/`` and
an ``.egg-info`` next to the sources) with the build backend of ``.venv``, no
network, and installed without dependencies into a temporary virtual
environment that sees ``.venv``'s packages through a ``.pth`` file. Its
commands then run from a directory outside the checkout: ``mlgov`` (every
``flask --app app`` command) against the test's database, ``mlgov-gate`` and
``python -m governance.gate.client``. The C module is optional: a build
whose compiler fails still gives a wheel, without it.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from guides.live import guide_environment

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
# What a wheel is built from: the checkout without what is not part of it.
NOT_PACKAGED = {".git", ".venv", "instance", "build", "tests", "bench"}  # at the top
NEVER_PACKAGED = {"__pycache__", ".pytest_cache", ".hypothesis"}  # anywhere


def declared() -> list[Requirement]:
    project = PYPROJECT["project"]
    extras = [dep for deps in project.get("optional-dependencies", {}).values() for dep in deps]
    return [Requirement(dep) for dep in project["dependencies"] + extras]


def pinned() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            (version,) = [spec.version for spec in requirement.specifier if spec.operator == "=="]
            pins[canonicalize_name(requirement.name)] = version
    return pins


def test_every_dependency_allows_the_version_requirements_txt_pins():
    pins = pinned()
    for requirement in declared():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is declared but requirements.txt does not pin it"
        assert requirement.specifier.contains(pins[name]), f"{requirement} excludes the pinned {pins[name]}"


def test_every_third_party_import_is_a_declared_dependency():
    first_party = {"app", "ledger", "governance", "migrations"}
    sources = [ROOT / "app.py", *(ROOT / "ledger").rglob("*.py"), *(ROOT / "governance").rglob("*.py"),
               *(ROOT / "migrations").rglob("*.py")]
    # ledger/_build.py compiles the C module in a checkout (make); it imports setuptools, a build tool.
    sources.remove(ROOT / "ledger" / "_build.py")
    imported = set()
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.add(node.module.split(".")[0])
    third_party = imported - first_party - set(sys.stdlib_module_names)
    names = {canonicalize_name(r.name) for r in declared()}
    distributions = packages_distributions()
    undeclared = {module: distributions.get(module) for module in third_party
                  if not names & {canonicalize_name(d) for d in distributions.get(module, [])}}
    assert undeclared == {}, "imported but not declared in pyproject.toml"


def copy_of_the_checkout(target: Path) -> Path:
    def ignore(directory, names):
        top = Path(directory) == ROOT
        return {n for n in names if (top and n in NOT_PACKAGED) or n in NEVER_PACKAGED
                or n.endswith((".egg-info", ".so", ".pyc"))}

    return Path(shutil.copytree(ROOT, target, ignore=ignore))


def build_wheel(source: Path, out: Path, **env) -> Path:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "-w", str(out), str(source)],
        cwd=source, env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = out.glob("*.whl")
    return wheel


def venv_seeing_dot_venv(path: Path) -> Path:
    """A virtual environment of its own whose interpreter also imports ``.venv``'s packages."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=60)
    python = path / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "dot-venv.pth").write_text(sysconfig.get_path("purelib") + "\n", encoding="utf-8")
    return python


@pytest.fixture(scope="module")
def wheels(tmp_path_factory):
    """The wheel built with the compiler, and one built where the compiler fails."""
    base = tmp_path_factory.mktemp("wheels")
    source = copy_of_the_checkout(base / "source")
    with_compiler = build_wheel(source, base / "with")
    shutil.rmtree(source / "build")
    without = build_wheel(source, base / "without", CC="/bin/false")
    return with_compiler, without


def test_the_wheel_holds_the_code_the_pages_the_migrations_the_policies_and_the_c_module(wheels):
    names = set(zipfile.ZipFile(wheels[0]).namelist())
    for expected in ("app.py", "ledger/log.py", "governance/gate/client.py",
                     "governance/web/templates/base.html", "governance/web/static/web.css",
                     "migrations/alembic.ini", "migrations/env.py", "migrations/script.py.mako",
                     "policies/environments.yaml", "policies/tests/default-pack.yaml"):
        assert expected in names
    migrations = {p.name for p in (ROOT / "migrations" / "versions").glob("*.py")}
    assert {n.rsplit("/", 1)[1] for n in names if n.startswith("migrations/versions/")} == migrations
    assert [n for n in names if re.fullmatch(r"ledger/_speedups\..*\.so", n)]
    assert not [n for n in names if n.startswith(("tests/", "bench/")) or n.endswith(".c")]
    entry_points = zipfile.ZipFile(wheels[0]).read(
        next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    assert "mlgov = app:cli" in entry_points and "mlgov-gate = governance.gate.client:main" in entry_points


def test_a_build_whose_compiler_fails_still_gives_a_wheel_without_the_c_module(wheels, tmp_path):
    assert not [n for n in zipfile.ZipFile(wheels[1]).namelist() if n.endswith(".so")]
    python = venv_seeing_dot_venv(tmp_path / "venv")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    "--disable-pip-version-check", str(wheels[1])], check=True, timeout=120)
    done = subprocess.run([str(python), "-c", "import ledger.canonical as c; print(c.__file__, c.NATIVE_WALK)"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(tmp_path / "venv" / "lib" / f"python{sys.version_info.major}."
                                       f"{sys.version_info.minor}" / "site-packages" / "ledger" / "canonical.py"),
                                   "False"]


def test_the_installed_commands_run_outside_the_checkout(wheels, database, tmp_path):
    venv = tmp_path / "venv"
    python = venv_seeing_dot_venv(venv)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    "--disable-pip-version-check", str(wheels[0])], check=True, timeout=120)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "home").mkdir()
    env = guide_environment(database, tmp_path / "home")  # the test's database, keys under tmp_path
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}/usr/bin:/bin"

    def run(*command: str) -> str:
        done = subprocess.run([str(venv / "bin" / command[0]), *command[1:]], cwd=elsewhere, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout}{done.stderr}"
        return done.stdout + done.stderr

    where = run("python", "-c", "import app, ledger; print(app.__file__); print(app.INSTANCE_DIR)").split()
    assert where == [str(next(venv.glob("lib/python*/site-packages")) / "app.py"), str(venv / "var" / "mlgov")]
    commands = run("mlgov", "--help")
    for group in ("db", "ledger", "tokens", "policy", "governance"):  # the app loaded
        assert re.search(rf"^  {group} ", commands, re.M), commands
    assert "--app IMPORT" not in commands and "--env-file" not in commands
    run("mlgov", "db", "upgrade")
    out = run("mlgov", "tokens", "create", "--name", "alice", "--role", "author")
    assert re.search(r"^mlg_[0-9a-f]{16}_\S+$", out, re.M), out
    assert "alice" in run("mlgov", "tokens", "list")
    assert "policy test cases passed" in run("mlgov", "policy", "test")  # the default policies are installed
    assert "OK (full)" in run("mlgov", "ledger", "verify")
    assert run("mlgov-gate", "--help").startswith("usage: mlgov-gate ")
    assert "check" in run("python", "-m", "governance.gate.client", "--help")
