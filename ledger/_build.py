"""Build ``ledger._speedups`` (``ledger/_speedups.c``) in place: ``python -m ledger._build``.

Run by ``make setup`` (so by ``make run`` and ``make test``). Uses
setuptools' ``build_ext``, which compiles only when the source is newer than
the built module, with the interpreter's own compiler flags. It needs a C
compiler and the Python headers (Debian: ``gcc`` and ``python3-dev``). Where
they are missing the build says so and exits 0: the ledger then works with
the same bytes through the Python walk (``canonical._fast_path_admits_py``),
with batched appends about 15 % slower.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The extension, as this build and the package's (setup.py, which reads them
# from this file) compile it.
NAME = "ledger._speedups"
SOURCES = ["ledger/_speedups.c"]
COMPILE_ARGS = ["-O2", "-Wall", "-Wextra", "-Werror=implicit-function-declaration"]


def build(force: bool = False) -> Path:
    """Compile the extension next to its source and return the module's path."""
    from setuptools import Distribution, Extension
    from setuptools.command.build_ext import build_ext

    extension = Extension(NAME, SOURCES, extra_compile_args=COMPILE_ARGS)
    dist = Distribution({"name": "ledger-speedups", "ext_modules": [extension],
                         "script_name": "ledger/_build.py"})
    command = build_ext(dist)
    command.inplace = True
    command.force = force
    with tempfile.TemporaryDirectory(prefix="ledger-build-") as temp:
        command.build_temp = temp
        command.ensure_finalized()
        command.run()
    return ROOT / command.get_ext_filename(NAME)


def main(argv: list[str] | None = None) -> int:
    import os

    from setuptools.errors import CCompilerError, ExecError, PlatformError

    argv = sys.argv[1:] if argv is None else argv
    os.chdir(ROOT)  # build_ext --inplace resolves package directories from here
    try:
        path = build(force="--force" in argv)
    except (CCompilerError, ExecError, PlatformError) as e:
        print(f"ledger._speedups not built ({e}); the ledger uses its Python walk instead "
              "(same bytes, slower batched appends). Install a C compiler and the Python "
              "headers (Debian: gcc, python3-dev) to build it.", file=sys.stderr)
        return 0
    print(f"built {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
