"""``d2f flow extract --scenes DIR... --out DIR [--executor ray]``: one flow per scene folder.

Each scene folder (official layout, docs/flow.md) is extracted by :func:`d2f_core.flow.extract.extract`
into ``OUT/<scene-name>/flow.npz`` (with its quality report, pictures and ``flow_run/`` stage cache
beside it). ``OUT/<scene-name>/extract.json`` records how the scene ended (``ok`` or ``failed`` with a
one-line reason) and ``OUT/batch.json`` the whole batch (rewritten as scenes finish).

Resumable: a scene whose ``extract.json`` says ``ok`` for the same config and overrides and whose
``flow.npz`` exists is skipped on a re-run (``status: skipped``); a failed one is tried again. A scene
that fails never stops the batch. A ``--scenes`` folder that is not itself a scene (no
``camera_rgb.png``) is searched one level down for scene folders.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

__all__ = ["find_scenes", "extract_batch", "extract_scene"]

DONE_FILE = "extract.json"
BATCH_FILE = "batch.json"


def _is_scene(p: Path) -> bool:
    from .scene import RGB_FILE
    return (p / RGB_FILE).is_file()


def find_scenes(paths: Sequence[str | Path]) -> list[Path]:
    """Scene folders named by ``paths`` (a scene, or a folder of scenes), in order, without repeats."""
    from ..types import DataError
    found: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if not p.is_dir():
            raise DataError(f"--scenes {p}: no such folder; give scene folders (camera_rgb.png, initial_depth.npy, "
                            "...) or a folder that holds them")
        subs = [p] if _is_scene(p) else sorted(q for q in p.iterdir() if q.is_dir() and _is_scene(q))
        if not subs:
            raise DataError(f"--scenes {p}: neither a scene folder (no camera_rgb.png) nor a folder of scene "
                            "folders")
        for s in subs:
            if s.resolve() not in {f.resolve() for f in found}:
                found.append(s)
    names: dict[str, Path] = {}
    for s in found:
        if s.name in names:
            raise DataError(f"--scenes: two scenes are named {s.name!r} ({names[s.name]} and {s}); each flow is "
                            "written to OUT/<scene-name>/, so rename one")
        names[s.name] = s
    return found


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, path)


def _finished(out: Path, key: dict[str, Any]) -> dict[str, Any] | None:
    try:
        done = json.loads((out / DONE_FILE).read_text())
    except (OSError, ValueError):
        return None
    if done.get("status") == "ok" and done.get("key") == key and (out / "flow.npz").is_file():
        return done
    return None


def extract_scene(job: tuple) -> dict[str, Any]:
    """One scene: ``job = (scene, out_folder, config, overrides, camera, key[, cache_models])`` -> its record
    (never raises). ``cache_models``: build model components once per process (a Ray worker)."""
    from .extract import extract

    scene, out, config, overrides, camera, key = job[:6]
    registry = None
    if len(job) > 6 and job[6]:  # the config builds a model: once per worker process
        from ..acting.executors import model_cache_registry
        from ..registry import get_registry
        registry = model_cache_registry(get_registry().discover())
    out = Path(out)
    t0 = time.perf_counter()
    rec: dict[str, Any] = {"scene": str(scene), "name": Path(scene).name, "key": key}
    try:
        result = extract(scene, out / "flow.npz", config=config, overrides=list(overrides), camera=camera,
                         registry=registry)
        rec.update(status="ok", reason="", outputs=result.get("outputs", {}),
                   stand_ins=[s.get("plugin") for s in result.get("stand_ins", [])])
    except Exception as e:  # noqa: BLE001 - one bad scene never stops the batch
        text = str(e).strip().splitlines()
        rec.update(status="failed", reason=f"{type(e).__name__}: {(text[0] if text else '')[:300]}")
    rec["seconds"] = round(time.perf_counter() - t0, 3)
    try:
        _write_json(out / DONE_FILE, rec)
    except OSError:
        pass
    return rec


def _builds_model(scene: Path, config: Any, overrides: Sequence[str], camera: str | None) -> bool:
    """Whether the extraction config has a component that holds a model (``needs_weights``)."""
    from ..acting.executors import model_kinds
    from ..registry import get_registry
    from .extract import extraction_config
    try:
        cfg = extraction_config(scene, config, list(overrides), camera)
        return bool(model_kinds(cfg, get_registry().discover()))
    except Exception:  # noqa: BLE001 - a bad config fails in every job, with its message
        return False


def extract_batch(scenes: Sequence[str | Path], out_dir: str | Path, *, config: str | Path | None = None,
                  overrides: Sequence[str] = (), camera: str | None = None, executor: Any = "serial",
                  address: str | None = None, executor_options: dict[str, Any] | None = None,
                  progress: Callable[[int, int, dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Extract every scene (module docstring); returns the batch summary (also ``OUT/batch.json``)."""
    from ..acting.executors import make_executor
    from ..types import DataError

    if not str(out_dir).strip():
        raise DataError("--out '': empty folder name; give the folder for the flows, e.g. --out flows")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out}: a file; with --scenes, --out is a folder (one OUT/<scene-name>/ per scene)")
    found = find_scenes(scenes)
    if config is not None and Path(config).exists():
        config = str(Path(config).resolve())
    key = {"config": None if config is None else str(config), "overrides": list(overrides), "camera": camera}
    ex = make_executor(executor, address=address, **(executor_options or {})) if isinstance(executor, str) \
        else executor
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    records: dict[int, dict[str, Any]] = {}
    summary: dict[str, Any] = {"scenes": len(found), "ok": 0, "skipped": 0, "failed": 0, "seconds": 0.0,
                               "key": key, "results": []}

    def finished(i: int, rec: dict[str, Any]) -> None:
        records[i] = rec
        summary["results"] = [records[k] for k in sorted(records)]
        for s in ("ok", "skipped", "failed"):
            summary[s] = sum(r["status"] == s for r in records.values())
        summary["seconds"] = round(time.perf_counter() - t_all, 3)
        _write_json(out / BATCH_FILE, summary)
        if progress is not None:
            progress(len(records), len(found), rec)

    todo = []
    for i, s in enumerate(found):
        done = _finished(out / s.name, key)
        if done is not None:
            finished(i, {**done, "status": "skipped", "reason": "finished earlier (OUT/<scene>/extract.json)",
                         "seconds": 0.0})
        else:
            todo.append(i)
    cache = bool(todo) and ex.name != "serial" and _builds_model(found[todo[0]], config, overrides, camera)
    jobs = [(str(found[i].resolve()), str((out / found[i].name).resolve()), config, list(overrides), camera, key,
             cache) for i in todo]
    try:
        for j, rec, error in ex.map(extract_scene, jobs, builds_model=cache):
            if error is not None:
                rec = {"scene": jobs[j][0], "name": found[todo[j]].name, "key": key, "status": "failed",
                       "reason": f"extraction job failed: {error}", "seconds": 0.0}
            finished(todo[j], rec)
    finally:
        if isinstance(executor, str):  # ours: a local Ray cluster stops with the batch
            ex.close()
    return summary
