"""The project's files speak of the project, not of how the work on it was organised.

Docs, code and comments describe what the software does and what was
measured, never work sessions, numbered stops or tracker issues ("stop 11",
"next session", "issue #4"): those mean nothing to a reader of the tree. The
words "session" and "stop" alone are the project's own (web session cookies,
database sessions, pytest's session scope; stopping a server), so only the
organisational phrases are matched.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SELF = Path(__file__).resolve().relative_to(ROOT).as_posix()
SCOPE = ("docs/", "README.md", "ledger/", "governance/", "app.py", "bench/", "migrations/", "policies/",
         "Makefile", ".ci/", "tests/")

ORGANISATIONAL = re.compile(
    r"""\bstops?[\s-]+\d+                                    # stop 11, Stop 12's, stops 9-10, #stop-12
      | \bissues?\s+\#?\d+                                   # issue 4, Issue #4
      | \b(?:next|this|earlier|previous|prior|last|later|current|following)\s+session\b
        (?!\s+cookie)                                        # this session (not "this session cookie")
      | \bsession's\s+(?:first|last)\b                       # the session's first commit
      | \b(?:within|across)\s+the\s+session\b                # drifting within the session
    """,
    re.IGNORECASE | re.VERBOSE,
)


# Outside a git work tree (an unpacked archive), every file under SCOPE but these.
NOT_SOURCE = {".venv", "__pycache__", ".pytest_cache", ".hypothesis", "results", ".mlflow-venv", "build"}


def project_files() -> list[str]:
    """Tracked files and untracked ones git does not ignore, under SCOPE, that exist."""
    try:
        listed = [subprocess.run(["git", "ls-files", *extra], cwd=ROOT, capture_output=True, text=True,
                                 check=True, timeout=60).stdout.splitlines()
                  for extra in ([], ["--others", "--exclude-standard"])]
    except (OSError, subprocess.SubprocessError):
        listed = [[path.relative_to(ROOT).as_posix() for path in ROOT.rglob("*")
                   if not NOT_SOURCE & set(path.relative_to(ROOT).parts) and path.suffix not in (".so", ".pyc")]]
    paths = sorted({p for lines in listed for p in lines})
    return [p for p in paths
            if p != SELF and (p.startswith(SCOPE) or p in SCOPE) and (ROOT / p).is_file()]


def violations(text: str) -> list[tuple[int, str]]:
    """(line number, phrase) of every organisational phrase in ``text``."""
    return [(number, match.group(0))
            for number, line in enumerate(text.splitlines(), 1)
            for match in ORGANISATIONAL.finditer(line)]


@pytest.mark.parametrize("line", [
    "measured at stop 11", "Stop 12's figures", "see stops 9-10", "[figures](#stop-12-2026-11-26)",
    "done in the next session", "this session only", "an earlier session found", "the previous session",
    "issue 4", "Issue #4's targets", "the session's first commit", "drifting within the session",
])
def test_organisational_phrases_are_found(line):
    assert violations(line)


@pytest.mark.parametrize("line", [
    "the session cookie is sent over HTTPS only (SESSION_COOKIE_SECURE)",
    "a revoked token clears the session", "the session's CSRF token", "scope='session'",
    "stop the server with SIGTERM", "SIGTERM stops the workers", "stop_event.set()",
    "a database session", "this session cookie", "the issue is the lock", "SIGSTOP 19",
])
def test_the_projects_own_words_are_not(line):
    assert not violations(line)


def test_no_file_speaks_of_how_the_work_was_organised():
    found = []
    for path in project_files():
        data = (ROOT / path).read_bytes()
        if b"\0" in data:
            continue  # binary
        found += [f"{path}:{number}: {phrase!r}"
                  for number, phrase in violations(data.decode("utf-8", errors="replace"))]
    assert not found, "organisational phrases (reword as what the project does or measured):\n" + \
        "\n".join(found)


def test_without_git_the_walk_reads_the_same_files(monkeypatch):
    """An unpacked archive (no git) is checked too, file for file."""
    with_git = project_files()

    def no_git(*args, **kwargs):
        raise OSError("git: not found")

    monkeypatch.setattr(subprocess, "run", no_git)
    assert project_files() == with_git
