"""``d2f flow extract``: a scene folder (official layout) -> 3D object flow, quality report, pictures.

The scene stands in for the components it has files for (rgb.mp4 for the video model,
depth_frames.npy for the depth estimator, mask.png for the segmenter); the config supplies the
rest (default tracker: ``lucas-kanade``). Stages run through :class:`d2f_core.pipeline.Run` in a
run folder beside the output (``<stem>_run/``), so a second call resumes from its cache.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ..config import ComponentConfig, RunConfig, load_config
from ..types import DataError

DEFAULT_TRACKER = "lucas-kanade"
EXTRACTION_STAGES = ("observe", "video", "depth", "segment", "track", "flow")
_NEEDED = {"video": ("rgb.mp4", "the task video", "video.plugin=NAME (a video model, e.g. wan2.1, kling)"),
           "depth": ("depth_frames.npy (or .pt)", "per-frame depth", "depth.plugin=NAME (e.g. spatialtracker-v2)"),
           "segmenter": ("mask.png", "the object mask", "segmenter.plugin=NAME (e.g. grounded-sam2)")}


def extraction_config(scene_dir: str | Path, config: str | Path | None = None, overrides: list[str] = (),
                      camera: str | None = None) -> RunConfig:
    """The run config of an extraction: the file's (or defaults), the scene, no acting components."""
    cfg = load_config(config, list(overrides))
    data = cfg.model_dump(mode="python")
    for kind in ("world", "embodiment", "grasper", "dynamics", "solver", "hand"):
        data[kind] = None
    data["scene"] = str(scene_dir)
    if camera is not None:
        data["scene_camera"] = camera
    if data.get("tracker") is None:
        data["tracker"] = ComponentConfig(plugin=DEFAULT_TRACKER).model_dump()
    return RunConfig.model_validate(data)


def outputs_for(out: str | Path) -> dict[str, Path]:
    """Where an extraction writes, given --out FLOW.npz."""
    out = Path(out)
    if out.suffix != ".npz":
        raise DataError(f"--out {out}: the flow is written as .npz; give a path like flow.npz")
    stem = out.with_suffix("")
    return {"flow": out, "quality": Path(f"{stem}.quality.json"), "overlay": Path(f"{stem}_overlay.mp4"),
            "plot3d": Path(f"{stem}_3d.png"), "rerun": Path(f"{stem}.rrd"), "run_dir": Path(f"{stem}_run")}


def extract(scene_dir: str | Path, out: str | Path, *, config: str | Path | None = None,
            overrides: list[str] = (), camera: str | None = None, registry: Any = None,
            observers: list[Any] = ()) -> dict[str, Any]:
    """Run the extraction; returns the run's result dict plus ``outputs`` (name -> path written)."""
    from ..pipeline import STAGES, Run
    from ..registry import get_registry

    if not str(out).strip():
        raise DataError("--out '': empty file name; give the flow file, e.g. --out flow.npz")
    paths = outputs_for(out)
    cfg = extraction_config(scene_dir, config, overrides, camera)
    reg = registry or get_registry().discover()
    run = Run(config=cfg, out_dir=paths["run_dir"], registry=reg, seed=cfg.seed)
    for kind, (fname, what, fix) in _NEEDED.items():
        if not run.provided_by_scene(kind) and cfg.component(kind) is None:
            raise DataError(f"{run.scene.path}: no {fname} ({what}) and no {kind} plugin configured; add the "
                            f"file, or choose one with --set {fix}")
    for o in observers:
        reg.pm.register(o)
    try:
        with run:  # one process owns the run folder from the first stage to the last copy
            result = run.execute([s for s in STAGES if s.name in EXTRACTION_STAGES])
            if "flow" not in result.get("completed", []):
                raise DataError(result.get("message") or "flow extraction stopped before the flow stage")
            paths["flow"].parent.mkdir(parents=True, exist_ok=True)
            written = {}
            for name, src in (("flow", "flow.npz"), ("quality", "flow.quality.json"),
                              ("overlay", "flow_overlay.mp4"), ("plot3d", "flow_3d.png"), ("rerun", "flow.rrd")):
                p = paths["run_dir"] / src
                if p.is_file():
                    _atomic_copy(p, paths[name])
                    written[name] = str(paths[name])
    finally:
        for o in observers:
            reg.pm.unregister(o)
    result["outputs"] = written
    return result


def _atomic_copy(src: Path, dst: Path) -> None:
    """Copy to a temp name unique to this process, then rename over ``dst``."""
    import os
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    finally:
        if tmp.exists():
            tmp.unlink()
