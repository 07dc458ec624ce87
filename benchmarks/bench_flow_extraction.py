"""Flow extraction time: 49 frames at 480x640 with 1024 points, split by stage (issue 3).

Excludes video generation (the scene folder holds rgb.mp4 and depth_frames.npy); includes
reading the scene, depth alignment, the movable-part filter, Lucas-Kanade tracking, lifting,
the quality report and (second table) the pictures. Also reports the 3D error against the truth
of the synthetic sequence (a textured box translating and turning on a table).

Run:  python benchmarks/bench_flow_extraction.py [--repeat 3] [--write docs/benchmarks.md]
Target: under 5 s in total on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _doc import machine_line, publish  # noqa: E402

SECTION = "## Flow extraction (issue 3)"
STAGES = ("observe", "video", "depth", "segment", "track", "flow")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--frames", type=int, default=49)
    ap.add_argument("--points", type=int, default=1024)
    ap.add_argument("--tracker", default="lucas-kanade")
    ap.add_argument("--write", type=Path, default=None)
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
    for label, pictures in (("no pictures", False), ("with pictures", True)):
        for i in range(a.repeat):
            out = tmp / f"{label.replace(' ', '_')}_{i}" / "flow.npz"
            res = extract(scene, out, overrides=[f"tracker.plugin={a.tracker}", f"flow.num_points={a.points}",
                                                 f"flow.pictures={str(pictures).lower()}"])
            rows[label].setdefault("read scene", []).append(res["scene_load_seconds"])
            for s in STAGES:
                rows[label].setdefault(s, []).append(res["stages"][s]["seconds"])
            rows[label].setdefault("total", []).append(res["scene_load_seconds"] + sum(
                res["stages"][s]["seconds"] for s in STAGES))
            if not pictures:
                flow = ObjectFlow.load(out)
                with np.load(out.parent / "flow_run" / "tracks.npz") as z:
                    xy = z["queries"][:, 1:3].astype(np.float64)
                truth, ok = seq.true_points(xy)
                vis = flow.visible & ok[None]
                errors.append(float(np.linalg.norm(flow.points - truth, axis=-1)[vis].mean()))
    lines = [SECTION, "", machine_line(f"python benchmarks/bench_flow_extraction.py --repeat {a.repeat}"), "",
             f"{a.frames} frames at 640x480, {a.points} points, tracker `{a.tracker}`, median of {a.repeat} runs "
             f"(seconds). Mean 3D error of visible points against the synthetic truth: "
             f"{statistics.median(errors) * 1000:.1f} mm.", "",
             "| stage | " + " | ".join(rows) + " |", "|---|" + "---|" * len(rows)]
    for s in ("read scene",) + STAGES + ("total",):
        lines.append(f"| {s} | " + " | ".join(f"{statistics.median(rows[k][s]):.2f}" for k in rows) + " |")
    lines += ["", "Target: < 5 s in total (the `no pictures` column is the extraction itself; pictures are "
              "the overlay mp4 and the 3D plot)."]
    text = "\n".join(lines) + "\n"
    publish(a.write, SECTION, text)
    print(f"(scratch folder {tmp}; cores {os.cpu_count()})")


if __name__ == "__main__":
    main()
