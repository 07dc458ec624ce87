"""Push-T: random shooting along the T's 3D object flow with four dynamics models (configs/pusht.yaml).

The paper's protocol: 10 initial states x 10 seeds = 100 episodes per model (seed S starts from
gym-pusht's initial state S // 10; the seed also seeds the candidate sampling). Every episode is a
full ``d2f run pusht --seed S --set dynamics.plugin=MODEL``: the oracle video (the T moved to the goal,
a stand-in for Wan2.1 first-last-frame), simulator depth and mask (stand-ins), Lucas-Kanade tracking
and lifting, the point-cloud estimator (4 RGB-D views), random shooting with 1000 candidates and
L = 20 replanned after every push, gym-pusht's physics, and both success checks (the paper's 2 cm /
15 degrees, gym-pusht's coverage > 0.95).

    python benchmarks/bench_pusht.py --write                       # all four models, seeds 0-99
    python benchmarks/bench_pusht.py --models particle --seeds 0-9 --resume
    python benchmarks/bench_pusht.py --speed-only --write          # the replan timing table alone

Episodes go to ``runs/bench_pusht/<model>/seed<S>/``; ``--resume`` reuses an episode only when it was
made at this very commit. ``--write`` puts the tables in docs/benchmarks.md and the per-episode CSV
(model, seed, initial state, both successes, final distance, yaw, coverage, pushes, steps, median
replan seconds, seconds, commit) in docs/bench_pusht.csv.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _doc import commit, machine_line, publish  # noqa: E402

MODELS = ("particle", "pose", "heuristic", "pymunk")
PAPER = {"particle": "52/100", "pose": "12/100", "heuristic": "17/100", "pymunk": "-"}
SECTION = "## Push-T: random shooting with particle, pose, heuristic and pymunk dynamics"
SPEED_SECTION = "## Push-T: one replan (1000 candidates)"


def _one_thread() -> None:
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


def episode(model: str, seed: int, out_root: str, resume: bool) -> dict:
    _one_thread()
    from d2f_core.acting.evaluate import evaluate

    out = Path(out_root) / model / f"seed{seed}"
    here = commit()
    stamp = out / "bench.json"
    if resume and stamp.is_file():
        rec = json.loads(stamp.read_text())
        if rec.get("commit") == here and "dirty" not in here:
            return rec
    if out.exists():
        shutil.rmtree(out)
    t0 = time.perf_counter()
    # the recipe's own dynamics is `particle` (with its shipped checkpoint); the others by --set, as a user would
    overrides = [] if model == "particle" else [f"dynamics.plugin={model}"]
    summary = evaluate(ROOT / "configs" / "pusht.yaml", [seed], out, overrides=overrides)
    row = summary["results"][0]
    run = out / f"seed{seed}"
    result = json.loads((run / "result.json").read_text()) if (run / "result.json").is_file() else {}
    plan = json.loads((run / "agent.json").read_text()) if (run / "agent.json").is_file() else {}
    final = result.get("privileged_final") or {}
    replans = [h["seconds"] for h in (plan.get("history") or []) if "seconds" in h]
    rec = {"model": model, "seed": seed, "initial_state": seed // 10, "success": bool(row["success"]),
           "success_coverage": bool(final.get("success_coverage", False)),
           "distance_cm": _r((final.get("pose_error") or [None, None])[0], 100, 2),
           "yaw_deg": _r((final.get("pose_error") or [None, None])[1], 1, 1),
           "coverage": _r(final.get("coverage"), 1, 3), "pushes": plan.get("pushes"), "steps": row["steps"],
           "replan_s": round(statistics.median(replans), 3) if replans else None,
           "reason": row["reason"], "seconds": round(time.perf_counter() - t0, 1), "commit": here}
    stamp.write_text(json.dumps(rec, indent=1))
    print(f"{model} seed {seed}: success={rec['success']} coverage={rec['coverage']} {rec['distance_cm']} cm "
          f"{rec['yaw_deg']} deg, {rec['pushes']} pushes ({rec['seconds']} s) {rec['reason'][:80]}", flush=True)
    return rec


def _r(v, scale, nd):
    try:
        return round(float(v) * scale, nd)
    except (TypeError, ValueError):
        return None


def speed(repeats: int = 5) -> list[dict]:
    """One replan's model work (sample 1000 pushes, one batched predict, score) per model on the T's
    flow particles of seed 0, one torch thread, median of ``repeats``; and predict throughput."""
    _one_thread()
    import numpy as np

    from d2f_core.config import load_config
    from d2f_core.registry import BuildContext, get_registry
    from d2f_plugins.solver.random_shooting import score_candidates
    from d2f_plugins.world import pusht_scene as ps

    reg = get_registry().discover()
    cfg = load_config(ROOT / "configs" / "pusht.yaml")
    rng = np.random.default_rng(0)
    top = ps.t_surface_points(0.005, sides=False)[0]
    P = ps.to_world(top, (0.05, -0.03, 0.7)).astype(np.float32)        # ~250 top-face particles
    goal = ps.to_world(top, (0.06, -0.02, 0.75))
    rows = []
    base = None
    for model in ("heuristic", "particle", "pose", "pymunk"):
        opts = {"checkpoint": cfg.dynamics.options.get("checkpoint", "pusht-500")} if model in ("particle", "pose") \
            else {}
        dyn = reg.create("dynamics", model, opts, ctx=BuildContext(seed=0, workdir=ROOT / "runs"), where="dynamics")
        times, pt = [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            a = dyn.sample_actions(P, 1000, rng)
            t1 = time.perf_counter()
            pred = np.asarray(dyn.predict(P, np.asarray(a, dtype=np.float64)))
            t2 = time.perf_counter()
            score_candidates(pred, goal, np.ones(len(P), bool))
            times.append(time.perf_counter() - t0)
            pt.append(t2 - t1)
        rep, pr = statistics.median(times), statistics.median(pt)
        thr = 1000 * len(P) / pr
        if model == "heuristic":
            base = thr
        rows.append({"model": model, "particles": len(P), "replan_s": round(rep, 4), "predict_s": round(pr, 4),
                     "throughput": thr, "vs_heuristic": thr / base if base else 1.0})
    return rows


def speed_table(rows: list[dict]) -> str:
    out = ["| model | particles | one replan (sample + predict + score), 1000 candidates | predict alone | "
           "predict throughput (candidates·particles/s) | throughput / heuristic's |", "|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['model']} | {r['particles']} | {r['replan_s']:.3f} s | {r['predict_s']:.3f} s | "
                   f"{r['throughput']:.3g} | {r['vs_heuristic']:.3g} |")
    return "\n".join(out)


def table(records: list[dict]) -> str:
    rows = ["| dynamics | episodes | success (2 cm, 15°) | paper (Wan2.1 video) | success (coverage > 0.95) | "
            "median final distance / yaw | median pushes | median replan | median episode |",
            "|---|---|---|---|---|---|---|---|---|"]
    for m in MODELS:
        rs = [r for r in records if r["model"] == m]
        if not rs:
            continue
        med = lambda xs: statistics.median([x for x in xs if x is not None]) if any(  # noqa: E731
            x is not None for x in xs) else float("nan")
        rows.append(f"| {m} | {len(rs)} | **{sum(r['success'] for r in rs)}/{len(rs)}** | {PAPER[m]} | "
                    f"{sum(r['success_coverage'] for r in rs)}/{len(rs)} | "
                    f"{med([r['distance_cm'] for r in rs]):.1f} cm / {med([r['yaw_deg'] for r in rs]):.0f}° | "
                    f"{med([r['pushes'] for r in rs]):.0f} | {med([r['replan_s'] for r in rs]):.2f} s | "
                    f"{med([r['seconds'] for r in rs]):.0f} s |")
    return "\n".join(rows)


def per_state(records: list[dict]) -> str:
    states = sorted({r["initial_state"] for r in records})
    head = "| dynamics | " + " | ".join(f"state {s}" for s in states) + " |"
    rows = [head, "|---|" + "---|" * len(states)]
    for m in MODELS:
        rs = [r for r in records if r["model"] == m]
        if rs:
            rows.append(f"| {m} | " + " | ".join(
                f"{sum(r['success'] for r in rs if r['initial_state'] == s)}/"
                f"{sum(1 for r in rs if r['initial_state'] == s)}" for s in states) + " |")
    return "\n".join(rows)


def main() -> None:
    from d2f_core.acting.evaluate import parse_seeds

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--seeds", default="0-99")
    ap.add_argument("--jobs", type=int, default=2, help="parallel episodes (processes, one torch thread each)")
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench_pusht"))
    ap.add_argument("--resume", action="store_true", help="reuse episodes made at this same commit")
    ap.add_argument("--speed-only", action="store_true", help="only the replan timing table")
    ap.add_argument("--no-speed", action="store_true", help="skip the replan timing table (a quick look)")
    ap.add_argument("--write", action="store_true", help="write docs/benchmarks.md and docs/bench_pusht.csv")
    a = ap.parse_args()
    cmd = "python benchmarks/bench_pusht.py " + " ".join(sys.argv[1:])
    rows = [] if a.no_speed else speed()
    speed_text = (f"{SPEED_SECTION}\n\n{machine_line(cmd)} Commit {commit()[:12]}. One process, **one torch "
                  "thread** (the fair setting for a 2-core machine running two episodes at once), ~250 flow "
                  "particles of a T, median of 5.\n\n" + speed_table(rows) + "\n")
    print(speed_text)
    if a.speed_only:
        publish(ROOT / "docs" / "benchmarks.md" if a.write else None, SPEED_SECTION, speed_text)
        return
    t0 = time.time()
    seeds = parse_seeds(a.seeds)
    jobs = [(m, s, a.out, a.resume) for m in a.models for s in seeds]
    if a.jobs > 1:
        with ProcessPoolExecutor(a.jobs) as ex:
            records = list(ex.map(episode, *zip(*jobs)))
    else:
        records = [episode(*j) for j in jobs]
    commits = sorted({r["commit"] for r in records})
    body = (f"{machine_line(cmd)} {len(records)} episodes in {(time.time() - t0) / 60:.0f} min. Commit: "
            f"{', '.join(c[:12] for c in commits)}; per-episode CSV: [bench_pusht.csv](bench_pusht.csv).\n\n"
            f"{table(records)}\n\nSuccesses per initial state (gym-pusht's random initial state S // 10):\n\n"
            f"{per_state(records)}\n\n"
            "Each episode is `d2f run pusht --seed S --set dynamics.plugin=MODEL`. Stand-ins: the video (the T "
            "moved from its start to the goal pose, rendered by the world: an oracle for Wan2.1's first-last-frame "
            "video, which the paper used), the video's depth and the T's mask (simulator). Real: Lucas-Kanade "
            "tracking, lifting, the point-cloud estimator (4 calibrated RGB-D views, 1.5 cm voxels, nearest-"
            "neighbour matching), the models, random shooting (1000 candidates, L = 20, a replan after every "
            "push), gym-pusht's physics and both success checks. `pymunk` predicts with a copy of gym-pusht's "
            "physics and the T's exact shape: the upper bound, not a learned model.\n")
    publish(ROOT / "docs" / "benchmarks.md" if a.write else None, SECTION, f"{SECTION}\n\n{body}")
    if a.write and rows:
        publish(ROOT / "docs" / "benchmarks.md", SPEED_SECTION, speed_text)
        keys = ["model", "seed", "initial_state", "success", "success_coverage", "distance_cm", "yaw_deg",
                "coverage", "pushes", "steps", "replan_s", "seconds", "reason", "commit"]
        with open(ROOT / "docs" / "bench_pusht.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(keys)
            for r in sorted(records, key=lambda r: (MODELS.index(r["model"]), r["seed"])):
                w.writerow([int(r[k]) if isinstance(r[k], bool) else r[k] for k in keys])


if __name__ == "__main__":
    main()
