"""``d2f demo``: wall time, per-stage seconds and run-folder size (issue 15).

Each repeat runs ``python -m d2f_core.cli demo --out TMP`` as a fresh process into an empty folder
(no cache), times the whole process, reads the stage seconds from result.json and sums the
folder's file sizes. ``--save FILE.json`` keeps the measurements; ``--before FILE.json`` puts an
earlier measurement (e.g. of the previous commit, run from its own checkout) beside this one.

Run:  python benchmarks/bench_demo.py [--repeat 2] [--save F.json] [--before F.json] [--write docs/benchmarks.md]
Target: under 15 s and a run folder under 15 MB on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _doc import commit, machine_line, publish  # noqa: E402

SECTION = "## Demo run: time and size (issue 15)"
STAGES = ("observe", "video", "depth", "segment", "track", "flow", "grasp", "plan", "execute")


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def measure(repeat: int) -> dict:
    runs = []
    for i in range(repeat):
        out = Path(tempfile.mkdtemp(prefix="d2f-demo-bench-")) / "run"
        env = dict(os.environ, MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"))
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "d2f_core.cli", "demo", "--out", str(out)], env=env,
                           capture_output=True, text=True)
        wall = time.perf_counter() - t0
        result = json.loads((out / "result.json").read_text())
        runs.append({"wall": wall, "exit": p.returncode, "success": result.get("success"),
                     "steps": result.get("steps"), "bytes": folder_bytes(out),
                     "stages": {s: result["stages"].get(s, {}).get("seconds") for s in STAGES},
                     "load": os.getloadavg()[0] if hasattr(os, "getloadavg") else None})
        print(f"run {i}: {wall:.1f} s, success={result.get('success')}, {runs[-1]['bytes'] / 1e6:.1f} MB",
              file=sys.stderr)
    return {"commit": commit(), "date": time.strftime("%Y-%m-%d %H:%M"), "runs": runs}


def column(m: dict) -> dict[str, str]:
    runs = m["runs"]
    med = lambda xs: statistics.median([x for x in xs if x is not None]) if any(x is not None for x in xs) else None  # noqa: E731
    out = {"whole process (s)": f"{med([r['wall'] for r in runs]):.1f}",
           "run folder (MB)": f"{med([r['bytes'] for r in runs]) / 1e6:.1f}",
           "success": "/".join(str(r["success"]) for r in runs),
           "steps": "/".join(str(r["steps"]) for r in runs),
           "load average": "/".join(f"{r['load']:.1f}" for r in runs if r["load"] is not None)}
    for s in STAGES:
        v = med([r["stages"][s] for r in runs])
        out[f"{s} (s)"] = "-" if v is None else f"{v:.2f}"
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--save", type=Path, default=None)
    ap.add_argument("--before", type=Path, default=None)
    ap.add_argument("--write", type=Path, default=None)
    a = ap.parse_args()
    now = measure(a.repeat)
    if a.save:
        a.save.write_text(json.dumps(now, indent=1))
    cols = {}
    if a.before:
        before = json.loads(a.before.read_text())
        cols[f"before ({before['commit'][:7]}, {before['date']})"] = column(before)
    cols[f"now ({now['commit'][:7]}{'+dirty' if now['commit'].endswith('+dirty') else ''})"] = column(now)
    keys = list(next(iter(cols.values())))
    lines = [SECTION, "", machine_line(f"python benchmarks/bench_demo.py --repeat {a.repeat}"
                                       + (" --before BEFORE.json" if a.before else "")), "",
             f"`d2f demo` from an empty run folder, median of {a.repeat} runs per column; the machine is shared "
             "(load average given: 2 cores, so a load of 4 roughly doubles the seconds; compare the columns, "
             "which ran in turn).", "",
             "| what | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for k in keys:
        lines.append(f"| {k} | " + " | ".join(c[k] for c in cols.values()) + " |")
    lines += ["", "Target: under 15 s and a run folder under 15 MB on a 2-core machine."]
    publish(a.write, SECTION, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
