"""The one part of the build pyproject.toml does not state: the optional C module.

``ledger/_speedups.c`` (the canonical encoder's type walk) is compiled where
a C compiler and the Python headers are; without them the build says so and
the package installs without it: the ledger then runs the same walk in
Python. Its name, sources and flags come from ledger/_build.py, which builds
it in place in a checkout (``make``); that file is read, not imported, since
importing ``ledger`` needs the runtime dependencies.
"""

import runpy

from setuptools import Extension, setup

speedups = runpy.run_path("ledger/_build.py")
setup(ext_modules=[Extension(speedups["NAME"], speedups["SOURCES"], extra_compile_args=speedups["COMPILE_ARGS"],
                             optional=True)])
