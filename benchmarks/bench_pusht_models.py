"""Push-T dynamics on held-out pushes: how far each model's predicted particles land from the truth.

100 pushes of gym-pusht's physics (the ``pusht`` world's ``push``), 5 from each of the initial states
20-39 (``reset(seed=10 * S)``; the models were trained on random states drawn by ``d2f train``'s
seeded generator), each drawn by the shared push sampler. The particles are the T's top face on a
7.5 mm grid at the true pose; the truth after the push is the same grid at the new true pose. A
model's error is the mean distance between its predicted and the true particles (metres).

    python benchmarks/bench_pusht_models.py --write    # ~1 min; docs/benchmarks.md + docs/bench_pusht_models.csv
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _doc import commit, machine_line, publish  # noqa: E402

SECTION = "## Push-T: dynamics models on held-out pushes"
MODELS = ("particle", "pose", "heuristic", "pymunk")


def main() -> None:
    import numpy as np

    from d2f_core.registry import BuildContext, get_registry
    from d2f_plugins.dynamics.heuristic import HeuristicPushDynamics
    from d2f_plugins.world import pusht_scene as S
    from d2f_plugins.world.pusht import PushTOptions, PushTWorld

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", action="store_true", help="write docs/benchmarks.md and docs/bench_pusht_models.csv")
    a = ap.parse_args()
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    reg = get_registry().discover()
    models = {n: reg.create("dynamics", n, {}, ctx=BuildContext(seed=0, workdir=ROOT / "runs"), where="dynamics")
              for n in MODELS}
    local = S.t_surface_points(0.0075, sides=False)[0]
    rng = np.random.default_rng(123)
    sampler = HeuristicPushDynamics()
    world = PushTWorld(PushTOptions(render_observations=False))
    rows = []
    t0 = time.time()
    for state in range(20, 40):
        obs = world.reset(state * 10)
        for k in range(5):
            P = S.to_world(local, tuple(obs.privileged["block_pose"])).astype(np.float32)
            act = sampler.sample_actions(P, 1, rng)
            obs = world.push(act[0])
            Q = S.to_world(local, tuple(obs.privileged["block_pose"]))
            row = {"state": state, "push": k, "motion_mm": 1000 * float(np.linalg.norm(Q - P, axis=1).mean())}
            for n, m in models.items():
                pred = np.asarray(m.predict(P, act))[0]
                row[f"{n}_mm"] = 1000 * float(np.linalg.norm(pred - Q, axis=1).mean())
            rows.append(row)
    here = commit()
    lines = ["| model | mean error | median error | worst | pushes where it beats the heuristic |",
             "|---|---|---|---|---|"]
    for n in MODELS:
        e = [r[f"{n}_mm"] for r in rows]
        better = sum(r[f"{n}_mm"] < r["heuristic_mm"] for r in rows)
        lines.append(f"| {n} | {statistics.mean(e):.1f} mm | {statistics.median(e):.1f} mm | {max(e):.1f} mm | "
                     f"{better}/{len(rows)} |" if n != "heuristic" else
                     f"| {n} | {statistics.mean(e):.1f} mm | {statistics.median(e):.1f} mm | {max(e):.1f} mm | - |")
    motion = statistics.mean(r["motion_mm"] for r in rows)
    cmd = "python benchmarks/bench_pusht_models.py " + " ".join(sys.argv[1:])
    text = (f"{SECTION}\n\n{machine_line(cmd)} Commit {here[:12]}; {len(rows)} pushes in {time.time() - t0:.0f} s; "
            f"per-push CSV: [bench_pusht_models.csv](bench_pusht_models.csv).\n\n"
            f"Mean particle error after one push of gym-pusht's physics from held-out initial states 20-39 (the T "
            f"moved {motion:.1f} mm on average). `particle` and `pose` are the shipped models (`pusht-500`, 500 "
            f"training pushes); `pymunk` simulates with a copy of the true physics from the T's pose fitted to the "
            f"particles (its error is the fit's).\n\n" + "\n".join(lines) + "\n")
    publish(ROOT / "docs" / "benchmarks.md" if a.write else None, SECTION, text)
    if a.write:
        with open(ROOT / "docs" / "bench_pusht_models.csv", "w", newline="") as f:
            w = csv.writer(f)
            keys = ["state", "push", "motion_mm"] + [f"{n}_mm" for n in MODELS]
            w.writerow(keys + ["commit"])
            for r in rows:
                w.writerow([round(r[k], 3) if isinstance(r[k], float) else r[k] for k in keys] + [here])


if __name__ == "__main__":
    main()
