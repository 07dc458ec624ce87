"""Start-up cost: `import d2f_core` and `d2f plugins --json`, in fresh processes.

Run:  python benchmarks/bench_startup.py [--repeat 10] [--write docs/benchmarks.md]
Writes (or prints) a markdown table with date, machine and command. Targets (issue #2): both
"well under a second"; the contract check asks `import d2f_core` < 0.5 s with no heavy module.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

SECTION = "## Start-up (core issue)"


def timed(cmd: list[str], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        out.append(time.perf_counter() - t)
    return out


def import_only(repeat: int) -> list[float]:
    code = "import time; t = time.perf_counter(); import d2f_core; print(time.perf_counter() - t)"
    return [float(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                 text=True).stdout) for _ in range(repeat)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--write", type=Path, default=None)
    a = ap.parse_args()
    d2f = shutil.which("d2f") or "d2f"
    rows = [
        ("`import d2f_core` (in-process time)", import_only(a.repeat)),
        ("`python -c 'import d2f_core'` (whole process)", timed([sys.executable, "-c", "import d2f_core"], a.repeat)),
        ("`d2f plugins --json` (whole process)", timed([d2f, "plugins", "--json"], a.repeat)),
        ("`python -c 'pass'` (interpreter baseline)", timed([sys.executable, "-c", "pass"], a.repeat)),
    ]
    lines = [SECTION, "",
             f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, {os.cpu_count()} cores, "
             f"Python {platform.python_version()}; command: `python benchmarks/bench_startup.py "
             f"--repeat {a.repeat}`.", "",
             "| what | median | min | max |", "|---|---|---|---|"]
    for name, xs in rows:
        lines.append(f"| {name} | {statistics.median(xs) * 1000:.0f} ms | {min(xs) * 1000:.0f} ms | "
                     f"{max(xs) * 1000:.0f} ms |")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.write:
        doc = a.write.read_text() if a.write.exists() else "# Benchmarks\n\n"
        if SECTION in doc:
            start = doc.index(SECTION)
            nxt = doc.find("\n## ", start + len(SECTION))
            doc = doc[:start] + text + (doc[nxt + 1:] if nxt != -1 else "")
        else:
            doc = doc.rstrip() + "\n\n" + text
        a.write.write_text(doc)


if __name__ == "__main__":
    main()
