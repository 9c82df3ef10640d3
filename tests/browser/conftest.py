"""Real Chromium (Debian's /usr/bin/chromium, driven by Playwright) against the
real app served over HTTP on 127.0.0.1.

Each test gets its own database (SQLite file, or a PostgreSQL schema when
``DATABASE_URL`` says so — the fixtures of ``tests/conftest.py``), an app
served by werkzeug on a free port in a thread, and data written through the
JSON API. Playwright's own browser download is never used: run
``.ci/ensure-chromium`` (``make test-browser`` does).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ports import served

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: run .ci/ensure-chromium (never `playwright install`)")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": LAUNCH_ARGS,
            "headless": True}


@pytest.fixture
def live_app(app):
    """The test app served over real HTTP; returns its base URL."""
    with served(app, threaded=True) as url:
        yield url