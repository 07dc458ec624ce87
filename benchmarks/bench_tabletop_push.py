"""Tabletop push: random-shooting MPC along the block's 3D flow (configs/tabletop_push.yaml).

Three variants, every episode a full ``d2f run`` (oracle video, Lucas-Kanade tracking, lifting,
random shooting replanned after every push, the world's success check):

* ``default``: the recipe on seeds 0-9 (issue 11's Done-when: at least 8/10);
* ``paper-heuristic``: the paper's heuristic model (translate, no rotation:
  ``--set dynamics.options.rotation=none``) on seeds 0-9;
* ``held-out``: the recipe on seeds 10-29, which nothing was tuned on.

    python benchmarks/bench_tabletop_push.py --write            # ~15-25 min on 2 cores
    python benchmarks/bench_tabletop_push.py --variants default --resume

Episodes go to ``runs/bench_push/<variant>/seed<S>/`` (each a ``d2f eval`` folder with its
summary.json); ``--resume`` reuses an episode only when it was made at this very commit.
``--write`` puts the table in docs/benchmarks.md and docs/random_shooting.md and the per-episode
CSV (variant, seed, success, reason, final distance and yaw, steps, seconds, commit) in
docs/bench_tabletop_push.csv.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _doc import commit, machine_line, publish  # noqa: E402

VARIANTS = {
    "default": ((), range(0, 10)),
    "paper-heuristic": (("dynamics.options.rotation=none",), range(0, 10)),
    "held-out": ((), range(10, 30)),
}
SECTION = "## Tabletop push: random shooting along the flow"
RESULTS_START, RESULTS_END = "<!-- tabletop-push-results -->", "<!-- /tabletop-push-results -->"


def _errors(final: dict) -> tuple[float, float]:
    """Final block-to-goal distance (cm) and yaw error (deg, modulo 180: the block is symmetric)."""
    try:
        bx, by, byaw = final["block_pose"]
        gx, gy, gyaw = final["goal_pose"]
    except (KeyError, TypeError, ValueError):
        return float("nan"), float("nan")
    d = (gyaw - byaw + math.pi / 2) % math.pi - math.pi / 2
    return 100 * math.hypot(gx - bx, gy - by), math.degrees(abs(d))


def episode(variant: str, seed: int, out_root: str, resume: bool) -> dict:
    from d2f_core.acting.evaluate import evaluate

    overrides, _ = VARIANTS[variant]
    out = Path(out_root) / variant / f"seed{seed}"
    here = commit()
    stamp = out / "bench.json"
    if resume and stamp.is_file():
        rec = json.loads(stamp.read_text())
        if rec.get("commit") == here and "dirty" not in here:
            return rec
    if out.exists():
        shutil.rmtree(out)
    t0 = time.perf_counter()
    summary = evaluate(ROOT / "configs" / "tabletop_push.yaml", [seed], out, overrides=overrides)
    row = summary["results"][0]
    result_path = out / f"seed{seed}" / "result.json"
    result = json.loads(result_path.read_text()) if result_path.is_file() else {}
    dist, yaw = _errors(result.get("privileged_final") or {})
    rec = {"variant": variant, "seed": seed, "success": row["success"], "reason": row["reason"],
           "distance_cm": round(dist, 2), "yaw_deg": round(yaw, 1), "steps": row["steps"],
           "seconds": round(time.perf_counter() - t0, 1), "commit": here}
    stamp.write_text(json.dumps(rec, indent=1))
    print(f"{variant} seed {seed}: success={rec['success']} {dist:.1f} cm {yaw:.0f} deg ({rec['seconds']} s) "
          f"{rec['reason'][:90]}", flush=True)
    return rec


def table(records: list[dict]) -> str:
    rows = ["| variant | seeds | successes | median final distance | median final yaw | worst distance / yaw "
            "| median episode time |", "|---|---|---|---|---|---|---|"]
    for v in VARIANTS:
        rs = sorted((r for r in records if r["variant"] == v), key=lambda r: r["seed"])
        if not rs:
            continue
        med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
        d = [r["distance_cm"] for r in rs]
        y = [r["yaw_deg"] for r in rs]
        t = [r["seconds"] for r in rs]
        rows.append(f"| {v} | {rs[0]['seed']}-{rs[-1]['seed']} | {sum(r['success'] for r in rs)}/{len(rs)} | "
                    f"{med(d):.2f} cm | {med(y):.1f}° | {max(d):.2f} cm / {max(y):.1f}° | {med(t):.0f} s |")
    return "\n".join(rows)


def failures(records: list[dict]) -> str:
    lines = [f"- {r['variant']} seed {r['seed']}: {r['reason'] or '(no reason recorded)'} "
             f"({r['distance_cm']:.1f} cm, {r['yaw_deg']:.0f}°)" for r in records if not r["success"]]
    return "\n".join(lines) or "- none"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--jobs", type=int, default=2, help="parallel episodes (processes)")
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench_push"))
    ap.add_argument("--resume", action="store_true", help="reuse episodes made at this same commit")
    ap.add_argument("--write", action="store_true",
                    help="write the table into docs/benchmarks.md and docs/random_shooting.md, and the CSV")
    a = ap.parse_args()
    t0 = time.time()
    jobs = [(v, s) for v in a.variants for s in VARIANTS[v][1]]
    args = [(v, s, a.out, a.resume) for v, s in jobs]
    if a.jobs > 1:
        with ProcessPoolExecutor(a.jobs) as ex:
            records = list(ex.map(episode, *zip(*args)))
    else:
        records = [episode(*x) for x in args]
    missing = [r for r in records if not r["success"] and not r["reason"]]
    if missing:
        print(f"warning: {len(missing)} failed episode(s) without a failure reason", file=sys.stderr)
    commits = sorted({r["commit"] for r in records})
    cmd = "python benchmarks/bench_tabletop_push.py " + " ".join(sys.argv[1:])
    body = (f"{machine_line(cmd)} {len(records)} episodes in {(time.time() - t0) / 60:.0f} min. Commit: "
            f"{', '.join(c[:12] for c in commits)}; per-episode CSV: "
            f"[bench_tabletop_push.csv](bench_tabletop_push.csv).\n\n{table(records)}\n\n"
            "Each episode is `d2f run tabletop_push --seed S` (with the variant's `--set`): the oracle video "
            "(sim-oracle, a stand-in for the video model), simulator depth and mask (stand-ins), Lucas-Kanade "
            "tracking and lifting (real), the current particles from the block's true pose (sim-particles, "
            "stand-in), random shooting (512 pushes, L = 20) replanned after every push, and the world's own "
            "success check (block within 2 cm and 15° of the goal). Final distance and yaw are the block's "
            "error to the goal at the end of the episode.\n\nFailures:\n" + failures(records) + "\n")
    text = f"{SECTION}\n\n{body}"
    if a.write:
        with open(ROOT / "docs" / "bench_tabletop_push.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["variant", "seed", "success", "failure_reason", "distance_cm", "yaw_deg", "steps",
                        "seconds", "commit"])
            for r in sorted(records, key=lambda r: (list(VARIANTS).index(r["variant"]), r["seed"])):
                w.writerow([r["variant"], r["seed"], int(r["success"]), r["reason"], r["distance_cm"],
                            r["yaw_deg"], r["steps"], r["seconds"], r["commit"]])
        doc = ROOT / "docs" / "random_shooting.md"
        s = doc.read_text()
        if RESULTS_START in s and RESULTS_END in s:
            a_, b_ = s.index(RESULTS_START), s.index(RESULTS_END)
            s = s[:a_ + len(RESULTS_START)] + "\n" + body + s[b_:]
            doc.write_text(s)
    publish(ROOT / "docs" / "benchmarks.md" if a.write else None, SECTION, text)


if __name__ == "__main__":
    main()
