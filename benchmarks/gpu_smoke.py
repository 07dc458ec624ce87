"""GPU smoke test of the paper's real pipeline: the real recipe end to end, timed per stage.

With the real weights, checkouts and keys in place (``d2f doctor`` passes) it runs the recipe
(default ``real/bread_in_bowl``: Wan2.1 -> SpatialTrackerV2 -> Grounding DINO + SAM 2 -> CoTracker3
-> HaMeR -> AnyGrasp -> trajopt) on the shipped robosuite bread_in_bowl scene (seed 0), or on a
scene folder (``--scene DIR``: perception and grasps only), and prints each stage's time and peak
GPU memory, with the paper's 3-11 minutes per 3D object flow for comparison. The numbers also go
to ``OUT/gpu_smoke.json``.

Without them it prints the doctor's report (one line per problem, with its fix) and exits 2.

Run:  python benchmarks/gpu_smoke.py [--config real/bread_in_bowl] [--scene DIR] [--out DIR]
                                     [--seed 0] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _doc import commit, machine_line  # noqa: E402

from d2f_core.hookspecs import hookimpl  # noqa: E402

PAPER_FLOW_MINUTES = (3, 11)
"""Paper: "It takes 3 to 11 minutes to generate and process a 3D object flow" (video generation
being the bottleneck)."""
FLOW_STAGES = ("video", "hands", "depth", "segment", "track", "flow")
SCENE_DROPS = ["world=null", "embodiment=null", "solver=null", "dynamics=null"]


class GpuPeaks:
    """Stage observer: the peak CUDA memory of each stage (reset when it starts)."""

    def __init__(self) -> None:
        self.peaks: dict[str, float] = {}

    def _torch(self):
        try:
            import torch
        except ImportError:
            return None
        return torch if torch.cuda.is_available() else None

    @hookimpl
    def d2f_stage_started(self, run, stage):
        torch = self._torch()
        if torch is not None:
            torch.cuda.reset_peak_memory_stats()

    @hookimpl
    def d2f_stage_finished(self, run, stage, artifact, seconds, cached):
        torch = self._torch()
        if torch is not None:
            self.peaks[stage] = torch.cuda.max_memory_allocated() / 2**30


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="real/bread_in_bowl")
    ap.add_argument("--scene", type=Path, default=None, help="scene folder (official layout) instead of the world")
    ap.add_argument("--out", type=Path, default=Path("runs/gpu-smoke"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="override, e.g. video.plugin=veo3")
    a = ap.parse_args(argv)

    from d2f_core.config import load_config
    from d2f_core.doctor import diagnose
    from d2f_core.pipeline import Run
    from d2f_core.registry import get_registry

    overrides = list(a.overrides)
    if a.scene is not None:
        overrides = [f"scene={a.scene}"] + SCENE_DROPS + overrides
    report = diagnose(a.config, overrides=overrides)
    if not report.ok:
        print("gpu_smoke: the real recipe cannot run here; d2f doctor says:")
        for line in report.lines():
            print("  " + line)
        return 2

    cfg = load_config(a.config, overrides)
    reg = get_registry().discover()
    peaks = GpuPeaks()
    reg.pm.register(peaks)
    t0 = time.perf_counter()
    try:
        result = Run(config=cfg, out_dir=a.out, registry=reg, seed=a.seed, allow_partial=False).execute()
    finally:
        reg.pm.unregister(peaks)
    total = time.perf_counter() - t0
    stages = result.get("stages", {})
    gpu = "none"
    try:
        import torch
        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    command = f"python benchmarks/gpu_smoke.py --config {a.config}" + (f" --scene {a.scene}" if a.scene else "")
    print(machine_line(command))
    print(f"GPU: {gpu}; commit {commit()}; run folder {a.out}")
    print(f"{'stage':<9} {'status':<8} {'seconds':>9} {'peak GPU GiB':>13}")
    for name, s in stages.items():
        sec = s.get("seconds")
        peak = peaks.peaks.get(name)
        print(f"{name:<9} {s.get('status', '?'):<8} {sec if sec is not None else '-':>9} "
              f"{f'{peak:.1f}' if peak is not None else '-':>13}")
    flow_s = sum(float(stages[n].get("seconds") or 0.0) for n in FLOW_STAGES if n in stages)
    print(f"3D object flow (video .. flow): {flow_s / 60:.1f} min (paper: {PAPER_FLOW_MINUTES[0]}-"
          f"{PAPER_FLOW_MINUTES[1]} min); whole run {total / 60:.1f} min; success: {result.get('success')}")
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "gpu_smoke.json").write_text(json.dumps({
        "config": a.config, "scene": str(a.scene) if a.scene else None, "seed": a.seed, "gpu": gpu,
        "commit": commit(), "stages": stages, "peak_gpu_gib": peaks.peaks, "flow_seconds": flow_s,
        "total_seconds": total, "success": result.get("success"), "paper_flow_minutes": PAPER_FLOW_MINUTES},
        indent=2))
    return 0 if result.get("completed") else 1


if __name__ == "__main__":
    sys.exit(main())
