"""Run a guide's shell blocks in order, in one bash, and split what each printed."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .live import ROOT
from .markdown import Block, blocks

DOCUMENTED_URL = "http://127.0.0.1:8000"  # where the guides say the server is (make run)
_MARK = "@@guide block done@@"


@dataclass
class GuideRun:
    """The outcome of one guide: each run block with what it printed (stdout and stderr)."""

    path: Path
    returncode: int
    printed: list[tuple[Block, str]] = field(default_factory=list)
    failed: Block | None = None
    rest: str = ""  # the output of the failed block

    def output(self) -> str:
        """Everything the guide printed."""
        return "".join(out for _, out in self.printed) + self.rest

    def describe_failure(self) -> str:
        where = self.failed.where if self.failed else f"{self.path.name} (after its last block)"
        return f"{where} exited with {self.returncode}; it printed:\n{self.rest}"


def run_guide(path: Path, env: dict, url: str, workdir: Path, timeout: float = 300) -> GuideRun:
    """Run every run block of ``path`` in order under ``set -euo pipefail`` from the repository root.

    The server URL the guide documents is replaced with ``url``.
    """
    to_run = [b for b in blocks(path) if b.run]
    assert to_run, f"{path.name} has no block to run"
    parts = ["set -euo pipefail\n"]
    for number, block in enumerate(to_run):
        parts.append(block.text.replace(DOCUMENTED_URL, url))
        parts.append(f"printf '\\n%s %d\\n' '{_MARK}' {number}\n")
    script = workdir / f"{path.stem}.sh"
    script.write_text("".join(parts))
    done = subprocess.run(["bash", str(script)], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    pieces = done.stdout.split(f"\n{_MARK} ")
    run = GuideRun(path, done.returncode)
    for number, block in enumerate(to_run):
        if number + 1 < len(pieces):
            text = pieces[number]
            if number:  # drop the previous marker's number and newline
                text = text.split("\n", 1)[1] if "\n" in text else ""
            run.printed.append((block, text))
    if len(pieces) <= len(to_run):  # a block did not finish
        last = pieces[-1]
        run.rest = last.split("\n", 1)[1] if len(pieces) > 1 and "\n" in last else last
        run.failed = to_run[len(pieces) - 1]
    return run
