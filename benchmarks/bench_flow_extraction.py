"""Flow extraction time: 49 frames at 480x640 with 1024 points, split by stage (issue 3).

Excludes video generation (the scene folder holds rgb.mp4 and depth_frames.npy); includes
reading the scene, depth alignment, the movable-part filter, Lucas-Kanade tracking, lifting,
the quality report and (second table) the pictures. Also reports the 3D error against the truth
of the synthetic sequence (a textured box translating and turning on a table).

Every repeat also times a bare ``cv2.calcOpticalFlowPyrLK`` pass over the same frames (frame to
frame, forward only, the same points, window and pyramid as the tracker's defaults) in the same
process, so the extraction is reported as a ratio to it: on a shared machine the ratio holds where
absolute seconds drift with the load.

Run:  python benchmarks/bench_flow_extraction.py [--repeat 3] [--write docs/benchmarks.md]
Target: under 1.5 s in total without pictures on a 2-core CPU (issue 15; was 5 s, issue 3).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _doc import commit, machine_line, publish  # noqa: E402

SECTION = "## Flow extraction (issue 3)"
STAGES = ("observe", "video", "depth", "segment", "track", "flow")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--frames", type=int, default=49)
    ap.add_argument("--points", type=int, default=1024)
    ap.add_argument("--tracker", default="lucas-kanade")
    ap.add_argument("--write", type=Path, default=None)
    ap.add_argument("--save", type=Path, default=None, help="keep this run's ratios as JSON")
    ap.add_argument("--before", type=Path, default=None, help="JSON of an earlier --save (e.g. the previous "
                                                                "commit, run from its checkout) to show beside")
    a = ap.parse_args()

    from d2f_core import ObjectFlow, Video
    from d2f_core.flow.extract import extract
    from d2f_core.flow.scene import write_scene
    from d2f_conformance.synthetic import rigid_box_sequence

    seq = rigid_box_sequence(num_frames=a.frames, width=640, height=480)
    tmp = Path(tempfile.mkdtemp(prefix="d2f-bench-"))
    scene = write_scene(tmp / "scene", seq.rgbd(0), "move the box", "box", video=Video(frames=seq.rgb, fps=8.0),
                        depth_frames=seq.depth, mask=seq.mask("box"))
    rows: dict[str, dict[str, list[float]]] = {"no pictures": {}, "with pictures": {}}
    errors = []
    bare: list[float] = []
    ratios: dict[str, list[float]] = {"track": [], "total": []}
    for label, pictures in (("no pictures", False), ("with pictures", True)):
        for i in range(a.repeat):
            if not pictures:
                bare.append(bare_lk_seconds(seq, a.points))
            out = tmp / f"{label.replace(' ', '_')}_{i}" / "flow.npz"
            res = extract(scene, out, overrides=[f"tracker.plugin={a.tracker}", f"flow.num_points={a.points}",
                                                 f"flow.pictures={str(pictures).lower()}"])
            rows[label].setdefault("read scene", []).append(res["scene_load_seconds"])
            for s in STAGES:
                rows[label].setdefault(s, []).append(res["stages"][s]["seconds"])
            rows[label].setdefault("total", []).append(res["scene_load_seconds"] + sum(
                res["stages"][s]["seconds"] for s in STAGES))
            if not pictures:
                ratios["track"].append(rows[label]["track"][-1] / bare[-1])
                ratios["total"].append(rows[label]["total"][-1] / bare[-1])
                flow = ObjectFlow.load(out)
                with np.load(out.parent / "flow_run" / "tracks.npz") as z:
                    xy = z["queries"][:, 1:3].astype(np.float64)
                truth, ok = seq.true_points(xy)
                vis = flow.visible & ok[None]
                errors.append(float(np.linalg.norm(flow.points - truth, axis=-1)[vis].mean()))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [SECTION, "", machine_line(f"python benchmarks/bench_flow_extraction.py --repeat {a.repeat}")
             + f" Commit {commit()}; load average {load:.1f} at the end.", "",
             f"{a.frames} frames at 640x480, {a.points} points, tracker `{a.tracker}`, median of {a.repeat} runs "
             f"(seconds). Mean 3D error of visible points against the synthetic truth: "
             f"{statistics.median(errors) * 1000:.1f} mm.", "",
             "| stage | " + " | ".join(rows) + " |", "|---|" + "---|" * len(rows)]
    for s in ("read scene",) + STAGES + ("total",):
        lines.append(f"| {s} | " + " | ".join(f"{statistics.median(rows[k][s]):.2f}" for k in rows) + " |")
    lines += ["", f"Bare `cv2.calcOpticalFlowPyrLK` pass over the same frames (forward, frame to frame, {a.points} "
              f"points, 21 px window, 3 levels), same runs: median {statistics.median(bare):.2f} s. Ratios to it "
              "(median of the per-run ratios; they hold where the machine's load moves the seconds):", "",
              *ratio_table(a.before, {"commit": commit(), "date": time.strftime("%Y-%m-%d %H:%M"),
                                      "track": statistics.median(ratios["track"]),
                                      "total": statistics.median(ratios["total"]),
                                      "total_s": statistics.median(rows["no pictures"]["total"]),
                                      "bare_s": statistics.median(bare)}, a.save), "",
              "Target: < 1.5 s in total without pictures (the `no pictures` column is the extraction itself; "
              "pictures are the overlay mp4 and the 3D plot)."]
    text = "\n".join(lines) + "\n"
    publish(a.write, SECTION, text)
    print(f"(scratch folder {tmp}; cores {os.cpu_count()})")


def ratio_table(before: Path | None, now: dict, save: Path | None) -> list[str]:
    """Markdown rows: ratios to the bare LK pass, this run and (with --before) an earlier one."""
    import json
    if save is not None:
        save.write_text(json.dumps(now, indent=1))
    cols = []
    if before is not None:
        b = json.loads(before.read_text())
        cols.append((f"before ({b['commit'][:7]}, {b['date']})", b))
    cols.append((f"now ({now['commit'][:7]}{'+dirty' if now['commit'].endswith('+dirty') else ''})", now))
    out = ["| what | " + " | ".join(c for c, _ in cols) + " |", "|---|" + "---|" * len(cols)]
    out.append("| track stage / bare LK | " + " | ".join(f"{m['track']:.2f}" for _, m in cols) + " |")
    out.append("| extraction total (no pictures) / bare LK | " + " | ".join(f"{m['total']:.2f}" for _, m in cols)
               + " |")
    out.append("| extraction total, seconds (load-dependent) | " + " | ".join(f"{m['total_s']:.2f}" for _, m in cols)
               + " |")
    out.append("| bare LK pass, seconds (load-dependent) | " + " | ".join(f"{m['bare_s']:.2f}" for _, m in cols)
               + " |")
    return out


def bare_lk_seconds(seq, n: int) -> float:
    """One forward frame-to-frame pyramidal LK pass over the sequence for n object points (seconds)."""
    import time

    import cv2
    from d2f_core.flow.sampling import sample_object_points
    q, _ = sample_object_points(seq.rgbd(0), seq.mask("box"), n, erode_px=2, seed=0)
    t0 = time.perf_counter()
    grey = [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in seq.rgb]
    p = np.ascontiguousarray(q[:, 1:3], np.float32).reshape(-1, 1, 2)
    crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 30, 0.01)
    for t in range(len(grey) - 1):
        p, _st, _err = cv2.calcOpticalFlowPyrLK(grey[t], grey[t + 1], p, None, winSize=(21, 21), maxLevel=3,
                                                criteria=crit, minEigThreshold=1e-6)
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
