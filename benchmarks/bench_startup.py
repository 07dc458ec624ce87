"""Start-up cost: `import d2f_core` and `d2f plugins --json`, in fresh processes.

Run:  python benchmarks/bench_startup.py [--repeat 10] [--write docs/benchmarks.md]
Writes (or prints) a markdown table with date, machine and command. Targets (issue #2): both
"well under a second"; the contract check asks `import d2f_core` < 0.5 s with no heavy module.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _doc import machine_line, publish  # noqa: E402

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
    lines = [SECTION, "", machine_line(f"python benchmarks/bench_startup.py --repeat {a.repeat}"), "",
             "| what | median | min | max |", "|---|---|---|---|"]
    for name, xs in rows:
        lines.append(f"| {name} | {statistics.median(xs) * 1000:.0f} ms | {min(xs) * 1000:.0f} ms | "
                     f"{max(xs) * 1000:.0f} ms |")
    text = "\n".join(lines) + "\n"
    publish(a.write, SECTION, text)


if __name__ == "__main__":
    main()
