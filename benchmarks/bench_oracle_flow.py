"""Flow from simulated oracle scenes against the simulator's truth (issues 3 and 4).

For each task and seed: `d2f world oracle TASK --out DIR` (scene folder + oracle_truth.npz), then
`d2f flow extract --scene DIR` with the default tracker, then the error of the flow against the
true motion of the same surface points (oracle_truth.npz), in the last frame and over all frames.

Run:  MUJOCO_GL=egl python benchmarks/bench_oracle_flow.py [--seeds 3] [--tasks ...] [--write docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _doc import machine_line, publish  # noqa: E402

SECTION = "## Flow from the simulated oracle against the truth (issues 3 and 4)"
TASKS = ("bread_in_bowl", "open_oven", "open_door", "cover_bowl")


def evaluate(task: str, seed: int, tmp: Path, tracker: str, sets: list[str] = ()) -> dict[str, float]:
    from typer.testing import CliRunner

    from d2f_core.cli_world import app
    from d2f_core.flow.extract import extract
    from d2f_core.types import ObjectFlow
    from d2f_plugins.world.robosuite_world.oracle import load_truth, true_motion

    scene = tmp / f"{task}-{seed}"
    if not (scene / "oracle_truth.npz").is_file():
        res = CliRunner().invoke(app, ["oracle", task, "--out", str(scene), "--seed", str(seed)])
        if res.exit_code != 0:
            raise RuntimeError(res.output)
    out = scene / f"flow-{abs(hash(tuple(sets))) % 10**8}.npz"
    t0 = time.perf_counter()
    extract(scene, out, overrides=[f"tracker.plugin={tracker}", *sets])
    seconds = time.perf_counter() - t0
    flow = ObjectFlow.load(out)
    truth = load_truth(scene / "oracle_truth.npz")
    gt = true_motion(truth, flow.points[0])
    err = np.linalg.norm(flow.points - gt, axis=-1)
    last = err[-1][flow.visible[-1]]
    # distance of each final point to the object's true final surface (nearest truth point)
    surf = np.asarray(truth["points_world"], np.float64)[-1]
    fin = flow.points[-1][flow.visible[-1]].astype(np.float64)
    to_surface = np.sqrt(((fin[:, None] - surf[None]) ** 2).sum(-1).min(1)) if len(fin) else np.array([])
    nan = float("nan")
    return {
        "final_median_mm": float(np.median(last) * 1000) if len(last) else nan,
        "final_within_1cm": float((last < 0.01).mean()) if len(last) else nan,
        "final_surface_median_mm": float(np.median(to_surface) * 1000) if len(to_surface) else nan,
        "all_mean_mm": float(err[flow.visible].mean() * 1000) if flow.visible.any() else nan,
        "visible_final": float(flow.visible[-1].mean()),
        "seconds": seconds,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--tasks", nargs="*", default=list(TASKS))
    ap.add_argument("--tracker", default="lucas-kanade")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="config override, e.g. "
                    "tracker.options.min_ncc=0.3")
    ap.add_argument("--tmp", type=Path, default=None, help="reuse oracle scenes from this folder")
    ap.add_argument("--write", type=Path, default=None)
    a = ap.parse_args()
    tmp = a.tmp or Path(tempfile.mkdtemp(prefix="d2f-oracle-flow-"))
    tmp.mkdir(parents=True, exist_ok=True)
    keys = ("final_median_mm", "final_within_1cm", "final_surface_median_mm", "all_mean_mm", "visible_final", "seconds")
    lines = [SECTION, "", machine_line(f"MUJOCO_GL=egl python benchmarks/bench_oracle_flow.py --seeds {a.seeds}"), "",
             f"49-frame oracle video at 640x480, 1024 points, tracker `{a.tracker}` {' '.join(a.sets)}, seeds "
             f"0..{a.seeds - 1}; medians "
             "over seeds. *final*: the last frame's visible points against their true positions; *surface*: their "
             "distance to the object's true final surface; *all*: every visible point of every frame.", "",
             "| task | final median (mm) | final within 1 cm | final to surface (mm) | all frames mean (mm) | "
             "visible at end | extraction (s) |", "|---|---|---|---|---|---|---|"]
    for task in a.tasks:
        rows = [evaluate(task, s, tmp, a.tracker, a.sets) for s in range(a.seeds)]
        med = {k: statistics.median([r[k] for r in rows]) for k in keys}
        lines.append(f"| `{task}` | {med['final_median_mm']:.1f} | {med['final_within_1cm']:.0%} | "
                     f"{med['final_surface_median_mm']:.1f} | {med['all_mean_mm']:.1f} | {med['visible_final']:.0%} | "
                     f"{med['seconds']:.1f} |")
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    publish(a.write, SECTION, text)


if __name__ == "__main__":
    main()
