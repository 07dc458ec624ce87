"""Closed-loop benchmark: Dream2Flow (trajopt) vs AVDC vs RIGVid on the simulated real-world tasks.

For every task recipe (configs/<task>.yaml) and seed, the perception stages run once (video, depth,
mask, tracks, flow, grasp: cached in the seed's run folder) and each solver then plans and
executes from the same observation with the same grasp, so the comparison isolates the
representation (paper §5.2). Success is the world's own check (see
plugins/world/robosuite_world/tasks.py).

    python benchmarks/bench_closed_loop.py --seeds 10 --write        # all tasks, ~1 h on 2 cores
    python benchmarks/bench_closed_loop.py --tasks bread_in_bowl --seeds 2   # a quick look
    python benchmarks/bench_closed_loop.py --seeds 10 --executor ray [--address auto]   # on Ray (docs/scale.md)

Per episode, ``runs/bench/<task>/seed<N>/`` keeps result-<solver>.json, plan-<solver>.json,
rollout-<solver>.mp4/png; ``--resume`` skips episodes already done *at the same commit*. ``--write``
puts the table in docs/benchmarks.md and the per-episode CSV (task, solver, seed, success, failure
reason, steps, seconds, commit) in docs/bench_closed_loop.csv. A second section times the
trajectory optimisation (50 steps x 7 DoF).
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _doc import commit, machine_line, publish  # noqa: E402

TASKS = ("bread_in_bowl", "open_oven", "open_door", "cover_bowl")
SOLVERS = ("trajopt", "avdc", "rigvid")
LABEL = {"trajopt": "Dream2Flow", "avdc": "AVDC", "rigvid": "RIGVid"}
PAPER = {  # real robot, 10 trials each (paper Table: Dream2Flow / AVDC / RIGVid)
    "bread_in_bowl": ("8/10", "7/10", "6/10"), "open_oven": ("8/10", "0/10", "6/10"),
    "cover_bowl": ("3/10", "2/10", "1/10"), "open_door": ("-", "-", "-"),
}
TARGET = {"bread_in_bowl": 9, "open_oven": 8}
KNOWN = {  # what the runs showed when a task fails for every solver (checked by hand, 2026-11-22)
    "open_door": "the gripper reaches its lever grasp within a millimetre and the plans turn the end-effector "
                 "about 1 rad about the latch axis, but the handle ends at most 0.08 rad turned: the lever slips out "
                 "of the Panda's fingers. Scripted by hand with the same grasp, an exact turn about the latch axis "
                 "carries the handle to 0.73 rad, then one finger pad loses contact and the lever springs back, "
                 "short of the ~1 rad the latch needs; the rigid-grasp assumption fails here whatever motion is "
                 "followed (tracking the small, untextured lever with Lucas-Kanade is also poor: 28 mm median "
                 "error 14 frames in, 8 mm with 97 frames). With 97 frames and each of seed 0's first 10 grasps "
                 "forced in turn, one opens the door (hinge 0.40 rad) and two turn the handle fully (1.14-1.19 "
                 "rad) but pull the door only 0.05-0.08 rad; with the default grasp choice, seeds 0-4 all fail: "
                 "which grasp survives the turn is not something the flow or the tracking error tells apart",
    "cover_bowl": "the antipodal sampler finds no grasp on the flat cloth (2 mm thick on the table: no two opposing "
                  "surfaces within the gripper's 8 cm); a pinch grasp would be needed (the paper's scarf was "
                  "crumpled, and even there the rigid-grasp model managed 3/10)",
}


BY_HAND = ("Also checked by hand (2026-11-22, same machine): Dream2Flow on seeds 10-14 of bread_in_bowl and "
           "open_oven succeeds 5/5 and 5/5 (`--first-seed 10 --seeds 5 --solvers trajopt`); bread_in_bowl seed 0 "
           "succeeds with `--set solver.options.ik=pybullet` (PyBullet IK on pybullet_data's Panda) and with "
           "`--set embodiment.plugin=spot` (Spot's arm, same recipe). Seeds 42 and 1234: bread 2/2, oven 1/2 "
           "(oven seed 42: the handle slipped out of the gripper half-way and the door swung shut; the policy "
           "is open-loop on the grasp, it does not notice a lost grasp).")


def episode(task: str, seed: int, solvers: tuple[str, ...], out_root: str, resume: bool) -> list[dict]:
    """Run one task/seed for each solver; returns one record per solver."""
    from d2f_core.config import load_config
    from d2f_core.pipeline import Run, StageError
    from d2f_core.registry import get_registry

    out = Path(out_root) / task / f"seed{seed}"
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for solver in solvers:
        done = out / f"result-{solver}.json"
        here = commit()
        if resume and done.is_file():
            rec = json.loads(done.read_text()).get("_bench") or {}
            if rec.get("commit") == here and "dirty" not in here:  # only episodes of this very commit
                records.append(rec)
                continue
        cfg = load_config(ROOT / "configs" / f"{task}.yaml", [f"solver.plugin={solver}"])
        t0 = time.perf_counter()
        run = Run(config=cfg, out_dir=out, registry=get_registry(), seed=seed)
        error = ""
        try:
            result = run.execute()
        except StageError as e:
            result, error = run.result, str(e)
        finally:
            world = run.components.get("world")
            if world is not None and callable(getattr(world, "close", None)):
                world.close()
        plan = json.loads((out / "plan.json").read_text()) if (out / "plan.json").is_file() else {}
        rec = {"task": task, "seed": seed, "solver": solver, "success": bool(result.get("success")),
               "executable": plan.get("executable"),
               "reason": "" if result.get("success") else (result.get("message") or plan.get("reason") or error),
               "ended": (result.get("episode") or {}).get("ended"), "commit": here,
               "tracking_error_mm": (plan.get("optimiser") or {}).get("max_error_mm"),
               "optimiser_s": (plan.get("optimiser") or {}).get("seconds"),
               "steps": result.get("steps"), "seconds": round(time.perf_counter() - t0, 1),
               "final": result.get("privileged_final")}
        for name in ("plan.json", "rollout.mp4", "rollout.png", "plan_3d.png"):
            if (out / name).is_file():
                stem, ext = name.rsplit(".", 1)
                shutil.copyfile(out / name, out / f"{stem}-{solver}.{ext}")
        done.write_text(json.dumps({**result, "_bench": rec}, indent=1, default=str))
        records.append(rec)
        print(f"{task} seed {seed} {solver}: success={rec['success']} ({rec['seconds']} s) {rec['reason'][:100]}",
              flush=True)
    return records


def trajopt_speed(repeats: int = 10) -> dict:
    """Seconds to optimise 50 steps x 7 DoF (64 held points) on a known reachable flow."""
    import numpy as np

    from d2f_plugins.embodiment.robosuite_robots import FrankaOptions, _franka
    from d2f_core.geometry import to_frame
    from d2f_plugins.solver.flow_trajopt import optimise_tracking

    emb = _franka(FrankaOptions())
    times, errs = [], []
    for r in range(repeats):
        rng = np.random.default_rng(r)
        s = np.linspace(0, 1, 50)[:, None]
        lim = emb.joint_limits
        while True:  # a path at least 0.1 rad inside the limits (the limit term's margin is 0.05)
            q = np.array(emb.home_q) + (3 * s ** 2 - 2 * s ** 3) * rng.uniform(-0.5, 0.5, 7)
            if np.min(np.minimum(q - lim[:, 0], lim[:, 1] - q)) >= 0.1:
                break
        T0 = emb.fk(q[0])
        local = to_frame(T0, T0[:3, 3] + rng.normal(0, 0.04, (64, 3)))
        Ts, _ = emb.fk_jacobian(q)
        P = np.einsum("kab,nb->kna", Ts[:, :3, :3], local) + Ts[:, None, :3, 3]
        vis = rng.random(P.shape[:2]) > 0.3
        t0 = time.perf_counter()
        res = optimise_tracking(emb.fk_jacobian, q[0], local, P, vis, emb.joint_limits)
        times.append(time.perf_counter() - t0)
        errs.append(res.max_error)
    return {"median_s": statistics.median(times), "max_s": max(times), "max_error_mm": 1000 * max(errs),
            "repeats": repeats}


def _ray_episode(job: tuple) -> list[dict]:
    """:func:`episode` on a Ray worker (this script is not importable there until benchmarks/ is on the path)."""
    here = ROOT / "benchmarks"
    if str(here) not in sys.path:
        sys.path.insert(0, str(here))
    import bench_closed_loop

    return bench_closed_loop.episode(*job)


def _final(task: str, f: dict | None) -> str:
    """The task's key final-state numbers (privileged, for the report only)."""
    f = f or {}
    if task == "open_door":
        return f"handle {f.get('handle_qpos', float('nan')):.2f} rad, hinge {f.get('hinge_qpos', float('nan')):.2f} rad"
    if task == "open_oven":
        return f"hinge {f.get('hinge_qpos', float('nan')):.2f} rad"
    if task == "bread_in_bowl":
        return f"bread {100 * f.get('radial_m', float('nan')):.0f} cm from the bowl axis"
    if task == "cover_bowl":
        return f"{f.get('covered_points', '?')}/17 bowl points covered"
    return ""


def failure_notes(records: list[dict]) -> str:
    """One line per (task, solver) with failures: counted causes, seeds and final states."""
    from collections import defaultdict

    groups: dict[tuple[str, str], dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        if r["success"]:
            continue
        if r["executable"] is False:
            cause = "refused: " + r["reason"].split(":")[0]
        elif r["reason"]:
            cause = r["reason"].split(": ", 2)[-1][:70]
        else:
            cause = "executed, the task check failed"
        detail = f"seed {r['seed']}" + (f" ({_final(r['task'], r['final'])})" if r.get("final") else "")
        groups[(r["task"], r["solver"])][cause].append(detail)
    lines = []
    for (t, s), causes in sorted(groups.items()):
        parts = [f"{len(v)} x {c} [{'; '.join(v[:3])}{'; ...' if len(v) > 3 else ''}]" for c, v in causes.items()]
        lines.append(f"- {t} / {LABEL[s]}: " + " | ".join(parts))
    return "\n".join(lines)


def table(records: list[dict], tasks: tuple[str, ...], solvers: tuple[str, ...], seeds: int) -> str:
    rows = ["| task | " + " | ".join(f"{LABEL[s]} (ours, sim)" for s in solvers)
            + " | paper Dream2Flow / AVDC / RIGVid (real robot) | target |",
            "|---|" + "---|" * len(solvers) + "---|---|"]
    for t in tasks:
        cells = []
        for s in solvers:
            rs = [r for r in records if r["task"] == t and r["solver"] == s]
            ok = sum(r["success"] for r in rs)
            refused = sum(r["executable"] is False for r in rs)
            cells.append(f"{ok}/{len(rs)}" + (f" ({refused} refused)" if refused else ""))
        tgt = f">= {TARGET[t]}/10" if t in TARGET else "-"
        rows.append(f"| {t} | " + " | ".join(cells) + f" | {' / '.join(PAPER[t])} | {tgt} |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    ap.add_argument("--solvers", nargs="+", default=list(SOLVERS), choices=SOLVERS)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2, help="parallel episodes (processes; with --executor ray and "
                    "no --address: the local Ray cluster's CPUs)")
    ap.add_argument("--executor", choices=("local", "ray"), default="local",
                    help="local: a process pool of --jobs; ray: one Ray task per task/seed (docs/scale.md)")
    ap.add_argument("--address", default=None, help="--executor ray: an existing cluster (auto, ray://HOST:10001)")
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench"))
    ap.add_argument("--resume", action="store_true", help="skip episodes whose result-<solver>.json exists")
    ap.add_argument("--write", action="store_true", help="write the tables into docs/benchmarks.md")
    a = ap.parse_args()
    tasks, solvers = tuple(a.tasks), tuple(a.solvers)
    seeds = range(a.first_seed, a.first_seed + a.seeds)
    t0 = time.time()
    jobs = [(t, s) for t in tasks for s in seeds]
    records: list[dict] = []
    if a.executor == "ray":
        from d2f_core.acting.executors import RayExecutor
        ex = RayExecutor(address=a.address, local_cpus=None if a.address else a.jobs)
        args = [(t, s, solvers, str(Path(a.out).resolve()), a.resume) for t, s in jobs]
        by_job: dict[int, list[dict]] = {}
        try:
            for i, recs, error in ex.map(_ray_episode, args):
                if error is not None:  # the job died (e.g. a MuJoCo crash): its episodes fail, the rest go on
                    t, s = jobs[i]
                    recs = [{"task": t, "seed": s, "solver": sv, "success": False, "executable": None,
                             "reason": f"episode job failed: {error}", "ended": "error", "commit": commit(),
                             "steps": None, "seconds": None, "final": None} for sv in solvers]
                print(f"{jobs[i][0]} seed {jobs[i][1]}: " + ", ".join(
                    f"{r['solver']} {'ok' if r['success'] else 'failed'}" for r in recs), file=sys.stderr)
                by_job[i] = recs
        finally:
            ex.close()
        records = [r for i in sorted(by_job) for r in by_job[i]]  # the serial order, whatever finished first
    elif a.jobs > 1:
        with ProcessPoolExecutor(a.jobs) as ex:
            for recs in ex.map(episode, *zip(*[(t, s, solvers, a.out, a.resume) for t, s in jobs])):
                records += recs
    else:
        for t, s in jobs:
            records += episode(t, s, solvers, a.out, a.resume)
    (Path(a.out) / "records.json").write_text(json.dumps(records, indent=1, default=str))
    missing = [r for r in records if not r["success"] and not r["reason"]]
    if missing:
        print(f"warning: {len(missing)} failed episode(s) without a failure reason", file=sys.stderr)
    commits = sorted({r.get("commit", "unknown") for r in records})
    if a.write:
        with open(ROOT / "docs" / "bench_closed_loop.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["task", "solver", "seed", "success", "failure_reason", "steps", "seconds", "commit"])
            for r in sorted(records, key=lambda r: (r["task"], r["solver"], r["seed"])):
                w.writerow([r["task"], r["solver"], r["seed"], int(r["success"]), r["reason"], r.get("steps"),
                            r.get("seconds"), r.get("commit", "unknown")])
    minutes = (time.time() - t0) / 60
    cmd = "python benchmarks/bench_closed_loop.py " + " ".join(sys.argv[1:])
    notes = failure_notes(records)
    for t in tasks:
        rs = [r for r in records if r["task"] == t]
        if t in KNOWN and rs and not any(r["success"] for r in rs):
            notes += f"\n- why {t} fails everywhere: {KNOWN[t]}."
    episode_min = sum(float(r.get("seconds") or 0.0) for r in records) / 60
    text = (f"## Closed loop: Dream2Flow vs AVDC vs RIGVid (simulated real-world tasks)\n\n"
            f"{machine_line(cmd)} {len(records)} episodes, {episode_min:.0f} min of episode time "
            f"(this call: {minutes:.0f} min; `--jobs 2` runs two at once, `--resume` reuses finished episodes "
            f"from {Path(a.out).name}/ of the same commit). Commit: {', '.join(c[:12] for c in commits)}; "
            f"per-episode CSV with failure reasons: [bench_closed_loop.csv](bench_closed_loop.csv).\n\n"
            f"{table(records, tasks, solvers, a.seeds)}\n\n"
            "Ours are **simulated** (robosuite/MuJoCo, Franka) with an **oracle video** (sim-oracle renders the "
            "task done right; no video model runs here), simulator depth and masks (sim-depth, sim-mask) and the "
            "oracle's contact point as the thumb (sim-hand): the numbers measure tracking (Lucas-Kanade), "
            "lifting, grasping (antipodal), the representation and execution, not video generation. The paper's "
            "numbers are real-robot trials with generated videos (Veo 3). The three solvers share the seed's "
            "observation, flow and grasp; they differ only in the object motion followed: the 3D flow "
            "(Dream2Flow), rigid transforms from dense optical flow + depth (AVDC), or a rigid pose track "
            "fitted to the 3D flow (RIGVid). \"refused\": the solver found the motion unreachable and did not "
            "execute it.\n\nFailures:\n" + (notes or "- none") + "\n\n" + BY_HAND + "\n")
    out_doc = ROOT / "docs" / "benchmarks.md" if a.write else None
    publish(out_doc, "## Closed loop: Dream2Flow vs AVDC vs RIGVid", text)
    sp = trajopt_speed()
    text2 = (f"## Trajectory optimisation speed (50 steps x 7 DoF)\n\n{machine_line(cmd)}\n\n"
             f"| repeats | median | max | worst tracking error |\n|---|---|---|---|\n"
             f"| {sp['repeats']} | {sp['median_s']:.2f} s | {sp['max_s']:.2f} s | {sp['max_error_mm']:.2f} mm |\n\n"
             "Levenberg-Marquardt on the rigid-grasp flow cost (w_f 10, w_r 100, w_s 1, w_m 0.01, Huber 2 cm) with "
             "analytic MuJoCo Jacobians, 64 held points, 30 % of them hidden per step, from the grasp joints; "
             "the flows are made by a known reachable joint path (target: under 1 s).\n")
    publish(out_doc, "## Trajectory optimisation speed", text2)


if __name__ == "__main__":
    main()
