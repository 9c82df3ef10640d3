"""The command blocks of a guide, and the output the guide shows for them.

The convention, which a reader of the rendered page never sees:

- a fenced block whose info string is ``sh`` is run, unless the line before
  it is an HTML comment starting ``<!-- not run`` (a command for a person's
  terminal only, such as ``make run``, with the reason in the comment);
- a ``text`` block that follows a run ``sh`` block, with nothing but blank
  lines between them, is what that block prints: each of its lines
  must appear in the real output, in order (``...`` stands for lines left
  out). Ids, digests and numbers of two digits or more may differ (see
  :func:`normalise`);
- any other block (``yaml``, ``text`` after prose, ``python`` ...) is shown only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_FENCE = re.compile(r"^```([A-Za-z0-9_-]*)\s*$")
_NOT_RUN = "<!-- not run"


@dataclass
class Block:
    """One fenced code block of a guide."""

    path: Path
    line: int  # of the opening fence, 1-based
    lang: str
    text: str
    run: bool
    not_run_because: str = ""  # the reason given in the comment, for a block that is not run
    shown_output: str | None = None

    @property
    def where(self) -> str:
        return f"{self.path.name}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """Every fenced block of the file, in order, each run block with its shown output."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    previous = ""  # the last non-blank line before the current position
    since_block = None  # the last block, while only blank lines follow it
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            if lines[i].strip():
                previous, since_block = lines[i].strip(), None
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), None)
        assert end is not None, f"{path.name}:{i + 1}: unclosed code block"
        lang, text = opening.group(1), "\n".join(lines[i + 1:end]) + "\n"
        if lang == "text" and since_block is not None and since_block.run and since_block.lang == "sh":
            since_block.shown_output = text
            since_block = None
        else:
            marked = previous.startswith(_NOT_RUN)
            reason = previous[len(_NOT_RUN):].removesuffix("-->").strip(" :") if marked else ""
            block = Block(path, i + 1, lang, text, run=lang == "sh" and not marked, not_run_because=reason)
            found.append(block)
            since_block = block
        previous = ""
        i = end + 1
    return found


def normalise(line: str) -> str:
    """A line with what differs from run to run replaced: UUIDs, base64 and hex, numbers."""
    line = re.sub(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", "<uuid>", line)
    line = re.sub(r"[A-Za-z0-9+/]{40,}={0,2}", "<b64>", line)
    line = re.sub(r"\b[0-9a-f]{12,}\b", "<hex>", line)
    line = re.sub(r"\b(dc|dp|ov|ev|ap)-\d+\b", r"\1-#", line)
    line = re.sub(r"\bseq \d+", "seq #", line)
    line = re.sub(r"\d{2,}", "#", line)
    return line.rstrip()


def missing_lines(shown: str, printed: str) -> list[str]:
    """The shown lines that the printed output lacks (in order), normalised; [] if none."""
    wanted = [normalise(line) for line in shown.splitlines() if line.strip() and line.strip() != "..."]
    got = [normalise(line) for line in printed.splitlines()]
    position, missing = 0, []
    for line in wanted:
        try:
            position = got.index(line, position) + 1
        except ValueError:
            missing.append(line)
    return missing
