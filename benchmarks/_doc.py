"""Shared by the benchmarks: replace (or append) one section of docs/benchmarks.md."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]


def commit() -> str:
    """The checked-out commit (``+dirty`` when tracked files outside docs/ differ from it)."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        # docs/ is where the benchmarks write their tables: it does not change what is measured
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!docs"],
                               cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def machine_line(command: str) -> str:
    return (f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}; command: `{command}`.")


def write_section(path: Path, section: str, text: str) -> None:
    """``text`` starts with the ``section`` heading; an existing section of that heading is replaced."""
    doc = path.read_text() if path.exists() else "# Benchmarks\n\n"
    if section in doc:
        start = doc.index(section)
        nxt = doc.find("\n## ", start + len(section))
        doc = doc[:start] + text.rstrip("\n") + "\n\n" + (doc[nxt + 1:] if nxt != -1 else "")
    else:
        doc = doc.rstrip() + "\n\n" + text
    path.write_text(doc)


def publish(path: Path | None, section: str, text: str) -> None:
    """Print a benchmark's section and, when ``path`` is given (``--write``), put it in that file."""
    print(text)
    if path is not None:
        write_section(path, section, text)
