"""Compose the configured components into stages and run them into a run folder.

Stages, in order (each runs only when the components it needs are configured):

========  =====================================  ===========================================
stage     needs                                  writes
========  =====================================  ===========================================
observe   world (or ``scene``)                   observation.npz (I0, D0, camera, joints)
video     video                                  video.npz (lossless) (+ video.mp4 with the io extra)
hands     hand                                   hands.npz
depth     depth                                  depth.npz (aligned, metres, 0.1 mm steps) + alignment
segment   segmenter                              mask.npz
track     tracker                                tracks.npz (queries sampled in the mask)
flow      (core)                                 flow.npz (ObjectFlow)
grasp     grasper                                grasps.json (candidates, the chosen one)
plan      solver, embodiment                     plan.json
execute   world, solver                          rollout.mp4 (+ rollout.npz: frame steps, rewards), success;
                                                 agent.json: a replanning agent's report at the end
========  =====================================  ===========================================

Artifacts of the perception stages are cached by the hash of their inputs (config of the
components involved, seed, upstream hashes): a killed run resumes where it stopped, and changing
the tracker re-runs only tracking and what follows. ``result.json`` is rewritten after every
stage, so a failed run keeps what it had done. The big arrays are stored compactly (lossless video
frames, depth quantised to 0.1 mm: :mod:`d2f_core.artifacts`); run folders of older versions still load.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import __version__
from .artifacts import decode_depth, decode_frames, encode_frames, quantise_depth, save_depth, save_frames
from .config import RunConfig
from .flow.align import apply_alignment, fit_scale_shift
from .flow.lifting import lift_tracks
from .flow.sampling import erode, farthest_point_sampling, sample_object_points
from .protocols import ACTING_KINDS, KINDS, Problem
from .registry import BuildContext, PluginError, Registry, get_registry
from .types import (RGBD, DataError, DepthVideo, Framing, Grasp, HandTrack, ObjectFlow, Observation,
                    Task, Tracks2D, Video)


class StageError(RuntimeError):
    """A stage failed; ``stage`` names it. The run folder keeps what was done before."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(f"stage {stage!r} failed: {message}")
        self.stage = stage


@dataclass
class Stage:
    name: str
    needs: tuple[str, ...]
    run: Callable[["Run"], Any]
    save: Callable[["Run", Any], None] | None = None
    load: Callable[["Run"], Any] | None = None
    inputs: tuple[str, ...] = ()
    """Config sections (besides ``needs``) whose content changes the stage's output."""


class RunFolderInUse(RuntimeError):
    """Another live process owns the run folder (its PID is in ``.d2f.lock``)."""


LOCK_FILE = ".d2f.lock"
_UNHASHED = {"result.json", "config.yaml", "manifest.json", "error.log", LOCK_FILE}


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    except OSError:
        return False
    return True


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to a temp file unique to this process and thread, then rename it over ``path``
    (readers see the old or the new content, never half; two writers never share a temp file)."""
    import threading
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Files directly in the run folder (not stages/) -> (size, mtime_ns)."""
    out = {}
    if folder.is_dir():
        for p in folder.iterdir():
            if p.is_file() and p.name not in _UNHASHED and not p.name.startswith("."):
                st = p.stat()
                out[p.name] = (st.st_size, st.st_mtime_ns)
    return out


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class Run:
    """One run: config, output folder, built components, artifacts, timings."""

    config: RunConfig
    out_dir: Path
    registry: Registry = field(default_factory=get_registry)
    seed: int | None = None
    allow_partial: bool = False
    components: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)
    _keys: dict[str, str] = field(default_factory=dict)
    scene: Any = None
    """The loaded scene folder (:class:`d2f_core.flow.scene.Scene`) when ``config.scene`` is set."""
    video_framing: Framing | None = None
    """How the camera image sat in the video model's frames, when they had another size."""
    quality: dict[str, Any] | None = None
    """The flow quality report (also written to flow.quality.json)."""

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        if self.seed is None:
            self.seed = self.config.seed
        if self.config.scene is not None and self.scene is None:
            from .flow.scene import load_scene
            t0 = time.perf_counter()
            self.scene = load_scene(self.config.scene, self.config.scene_camera,
                                    depth_scale=self.config.scene_depth_scale)
            self.result["scene_load_seconds"] = round(time.perf_counter() - t0, 3)

    # ------------------------------------------------------------------ ownership
    _lock_depth: int = field(default=0, init=False, repr=False)

    def lock(self) -> "Run":
        """Own the run folder: ``.d2f.lock`` holds this PID; a live other owner is a RunFolderInUse.
        Re-entrant; release with :meth:`unlock` (or use the Run as a context manager)."""
        if self._lock_depth:
            self._lock_depth += 1
            return self
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / LOCK_FILE
        for _ in range(3):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    pid = int(path.read_text().split()[0])
                except (OSError, ValueError, IndexError):
                    pid = -1  # half-written or garbage: treat as stale once it is old
                    try:
                        if time.time() - path.stat().st_mtime < 5:
                            time.sleep(0.2)
                            continue
                    except OSError:
                        continue
                if pid != os.getpid() and _pid_alive(pid):
                    raise RunFolderInUse(f"{self.out_dir}: run folder in use by PID {pid} (another d2f command "
                                         f"is writing it); wait for it to finish, or choose another --out (if PID "
                                         f"{pid} is no d2f command, delete {path})") from None
                try:  # stale (its process is gone): take it over
                    path.unlink()
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()}\n")
            self._lock_depth = 1
            return self
        raise RunFolderInUse(f"{path}: cannot take the run folder's lock; remove the file if no d2f command "
                             "is running on this folder")

    def unlock(self) -> None:
        if self._lock_depth == 0:
            return
        self._lock_depth -= 1
        if self._lock_depth == 0:
            path = self.out_dir / LOCK_FILE
            try:
                if path.read_text().split()[0] == str(os.getpid()):
                    path.unlink()
            except (OSError, IndexError):
                pass

    def __enter__(self) -> "Run":
        return self.lock()

    def __exit__(self, *exc: Any) -> None:
        self.unlock()

    def warn(self, message: str) -> None:
        """Record a warning in result.json (and show it through the progress observers)."""
        warnings = self.result.setdefault("warnings", [])
        if message not in warnings:
            warnings.append(message)
            self._notify("d2f_stage_progress", stage="warning", done=0, total=None, message=message)

    def provided_by_scene(self, kind: str) -> bool:
        """Whether the scene folder stands in for this component (rgb.mp4, depth_frames.npy, mask.png)."""
        return self.scene is not None and kind in self.scene.provided()

    # ------------------------------------------------------------------ components
    def component(self, kind: str) -> Any:
        """The run's component of ``kind`` (built on first use), or None when not configured."""
        if kind in self.components:
            return self.components[kind]
        cfg = self.config.component(kind)
        if cfg is None:
            return None
        ctx = BuildContext(seed=self.seed, workdir=self.out_dir, getter=self.component,
                           extras={"run": self})
        self.components[kind] = None  # guard against factories asking for themselves
        try:
            comp = self.registry.create(kind, cfg.plugin, cfg.options, ctx=ctx, where=kind)
        except Exception:
            del self.components[kind]
            raise
        self.components[kind] = comp
        return comp

    def check_config(self) -> list[str]:
        """Validate every configured plugin name and options before anything runs.

        Returns the kinds whose plugins are missing or unavailable when ``allow_partial``;
        raises otherwise.
        """
        missing = []
        for kind in KINDS:
            cfg = self.config.component(kind)
            if cfg is None or self.provided_by_scene(kind):
                continue
            try:
                entry = self.registry.get(kind, cfg.plugin, where=f"{kind}.plugin")
                reason = self.registry.unavailable_reason(entry.manifest)
                if reason:
                    raise PluginError(f"{kind}.plugin: {cfg.plugin!r} is unavailable here: {reason}")
                if kind == "world" and "mujoco" in tuple(entry.manifest.requires or ()):
                    from .gl import gl_choice
                    gl = gl_choice()
                    if gl.problem and gl.backend is not None:  # a MUJOCO_GL that cannot render: bad input
                        raise PluginError(f"{kind}.plugin: {cfg.plugin!r} renders with MuJoCo, but {gl.problem}")
                self.registry.validate_options(entry, cfg.options, where=f"{kind}.options")
            except PluginError:
                if not self.allow_partial:
                    raise
                missing.append(kind)
        if "solver" not in missing:
            self.check_solver_uses()
        return missing

    def check_solver_uses(self) -> None:
        """The configured solver can use every configured acting component (dynamics, estimator,
        reward) and has the ones it needs: else a PluginError naming the solver, the component and the
        capability it lacks, before any stage runs (never a silent substitution)."""
        cfg = self.config.solver
        if cfg is None:
            return
        try:
            sm = self.registry.get("solver", cfg.plugin).manifest
        except PluginError:
            return  # reported by check_config
        for kind in ACTING_KINDS:
            kc = self.config.component(kind)
            if kc is None:
                if f"needs_{kind}" in sm.capabilities:
                    offer = [e.manifest.name for e in self.registry.entries(kind)
                             if not sm.uses.get(kind) or sm.uses[kind] in e.manifest.capabilities]
                    raise PluginError(f"{kind}: solver {sm.name!r} needs a {kind}; add `{kind}: {{plugin: NAME}}` "
                                      f"(installed that it can use: {', '.join(offer) or 'none'})")
                continue
            users = [e.manifest.name for e in self.registry.entries("solver") if kind in e.manifest.uses]
            if kind not in sm.uses:
                raise PluginError(f"{kind}.plugin: solver {sm.name!r} cannot use a {kind} ({kc.plugin!r}); remove "
                                  f"`{kind}:` from the config or choose a solver that uses one "
                                  f"({', '.join(users) or 'none installed'})")
            need = sm.uses[kind]
            try:
                km = self.registry.get(kind, kc.plugin).manifest
            except PluginError:
                continue  # reported by check_config
            if need and need not in km.capabilities:
                offer = [e.manifest.name for e in self.registry.entries(kind) if need in e.manifest.capabilities]
                raise PluginError(f"{kind}.plugin: solver {sm.name!r} needs a {kind} with capability {need!r}; "
                                  f"{kc.plugin!r} lacks it (declares {', '.join(sorted(km.capabilities)) or 'none'}); "
                                  f"use one that has it: {', '.join(offer) or 'none installed'}")

    @property
    def task(self) -> Task:
        if self.config.task is not None:
            return Task(instruction=self.config.task.instruction, object=self.config.task.object)
        if self.scene is not None:
            return Task(instruction=self.scene.instruction, object=self.scene.object_name)
        world = self.component("world")
        if world is not None:
            return world.task
        raise DataError("task: the config has no task (task: {instruction: ..., object: ...}) "
                        "and no world that defines one")

    # ------------------------------------------------------------------ hooks
    def _notify(self, hook: str, **kwargs: Any) -> None:
        try:
            getattr(self.registry.pm.hook, hook)(run=self, **kwargs)
        except Exception as e:  # observers must not break a run
            self.result.setdefault("warnings", []).append(f"observer {hook} raised {type(e).__name__}: {e}")

    def progress(self, stage: str, done: int, total: int | None, message: str = "") -> None:
        self._notify("d2f_stage_progress", stage=stage, done=done, total=total, message=message)

    # ------------------------------------------------------------------ execution
    def execute(self, stages: list[Stage] | None = None) -> dict[str, Any]:
        """Run all stages whose components are configured; returns (and writes) result.json."""
        stages = STAGES if stages is None else stages
        if self.config.world is None and self.config.scene is None:
            raise DataError("config: nothing to observe: add a world (world: {plugin: ...}) "
                            "or a scene folder (scene: DIR); `d2f plugins --kind world` lists worlds")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with self:
            return self._execute(stages)

    def _execute(self, stages: list[Stage]) -> dict[str, Any]:
        missing = self.check_config()
        self._write_header()
        self.result.update({
            "name": self.config.name, "seed": self.seed, "success": None, "stages": self.stages,
            "stand_ins": self._stand_ins(), "completed": [], "stopped_at": None, "message": "",
        })
        for stage in stages:
            absent = [k for k in self._stage_kinds(stage) if k in missing]
            if absent:
                self.result["stopped_at"] = stage.name
                names = ", ".join(f"{k}: {self.config.component(k).plugin!r}" for k in absent)
                self.result["message"] = (f"stopped before stage {stage.name!r}: plugin(s) {names} "
                                          "not installed or unavailable here (`d2f plugins` says why)")
                break
            if not all(self._available(kind, stage) for kind in stage.needs):
                absent = [k for k in stage.needs if not self._available(k, stage)]
                self.stages[stage.name] = {"status": "skipped", "reason": f"no {', '.join(absent)} configured"}
                continue
            lacking = [d for d in _DEPENDS.get(stage.name, ()) if d not in self.artifacts]
            if lacking:
                self.stages[stage.name] = {"status": "skipped", "reason": f"needs {', '.join(lacking)}"}
            else:
                self._run_stage(stage)
        if self.result["stopped_at"] is None and "execute" not in self.artifacts:
            done = ", ".join(self.result["completed"]) or "none"
            self.result["message"] = f"ran stages {done}; nothing acted (no solver or embodiment configured)"
        self._write_result()
        return self.result

    def _stage_kinds(self, stage: Stage) -> list[str]:
        """Configured component kinds a stage builds (a world needs its embodiment)."""
        out = list(stage.needs) + (["embodiment"] if "world" in stage.needs else [])
        if self.scene is not None and stage.name == "observe":
            return []
        return [k for k in dict.fromkeys(out) if self.config.component(k) is not None
                and not self.provided_by_scene(k)]

    def _available(self, kind: str, stage: Stage | None = None) -> bool:
        if self.config.component(kind) is not None or self.provided_by_scene(kind):
            return True
        return kind == "world" and stage is not None and stage.name == "observe" and self.scene is not None

    def _key(self, stage: Stage) -> str:
        parts: dict[str, Any] = {"stage": stage.name, "seed": self.seed, "core": __version__}
        for kind in stage.needs:
            if kind in KINDS and self.config.component(kind) is not None:
                parts[kind] = self.config.component(kind).model_dump(mode="json")
        for section in stage.inputs:  # "task" or a dotted field such as "flow.num_points"
            value: Any = self.config
            for attr in section.split("."):
                value = getattr(value, attr, None)
            parts[section] = value.model_dump(mode="json") if hasattr(value, "model_dump") else value
        if stage.name == "observe" and self.scene is not None:
            parts["scene"] = self.scene.fingerprint()
        parts["upstream"] = dict(self._keys)  # every stage that ran before this one
        return _hash(parts)

    def _run_stage(self, stage: Stage) -> None:
        key = self._key(stage)
        self._keys[stage.name] = key
        meta_path = self.out_dir / "stages" / f"{stage.name}.json"
        self._notify("d2f_stage_started", stage=stage.name)
        t0 = time.perf_counter()
        cached = False
        artifact = None
        if stage.load is not None and meta_path.is_file():
            try:
                meta = json.loads(meta_path.read_text())
                if meta.get("key") == key and meta.get("status") == "done" and self._cache_intact(stage, meta):
                    artifact = stage.load(self)
                    cached = True
            except Exception as e:  # a corrupt or unreadable cache entry is recomputed, with a warning
                self.warn(f"stage {stage.name!r}: cached artifact not reused ({type(e).__name__}: {e}); "
                          "recomputing the stage")
                artifact, cached = None, False
        files: dict[str, str] = {}
        if not cached:
            before = _snapshot(self.out_dir)
            try:
                artifact = stage.run(self)
            except Exception as e:
                seconds = time.perf_counter() - t0
                self.stages[stage.name] = {"status": "failed", "seconds": round(seconds, 3),
                                           "error": f"{type(e).__name__}: {e}"}
                self.result["stopped_at"] = stage.name
                self.result["message"] = f"stage {stage.name!r} failed: {type(e).__name__}: {e}"
                if self.config.world is not None and self.config.solver is not None:
                    self.result["success"] = False  # an episode that was to act, and could not: a failure
                (self.out_dir / "error.log").write_text(traceback.format_exc())
                self._write_result()
                raise StageError(stage.name, f"{type(e).__name__}: {e}") from e
            if stage.save is not None:
                stage.save(self, artifact)
            after = _snapshot(self.out_dir)
            files = {n: file_sha256(self.out_dir / n) for n, st in sorted(after.items()) if before.get(n) != st}
        else:
            files = meta.get("files", {})
        seconds = time.perf_counter() - t0
        self.artifacts[stage.name] = artifact
        if stage.name == "observe" and isinstance(artifact, Observation) and artifact.rgbd is not None:
            # what was observed keys everything downstream: a changed scene (new world code, another
            # robosuite version) never reuses artifacts cached for the old one
            digest = hashlib.sha256(np.ascontiguousarray(artifact.rgbd.rgb).tobytes())
            digest.update(np.ascontiguousarray(artifact.rgbd.depth).tobytes())
            self._keys[stage.name] = key = _hash([key, digest.hexdigest()])
        self.stages[stage.name] = {"status": "done", "seconds": round(seconds, 3), "cached": cached}
        meta_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(meta_path, json.dumps({"key": key, "status": "done", "seconds": seconds, "files": files}))
        self.result["completed"].append(stage.name)
        self._notify("d2f_stage_finished", stage=stage.name, artifact=artifact, seconds=seconds,
                     cached=cached)
        self._write_result()

    def _cache_intact(self, stage: Stage, meta: dict[str, Any]) -> bool:
        """Whether every file the stage wrote still has the content hash recorded when it was written;
        a changed or missing one is a warning and the stage is recomputed."""
        files = meta.get("files")
        if not isinstance(files, dict):
            return False  # written before hashes were recorded: cannot be checked, recompute
        for name, digest in files.items():
            p = self.out_dir / name
            if not p.is_file():
                self.warn(f"stage {stage.name!r}: cached {name} is missing; recomputing the stage")
                return False
            if file_sha256(p) != digest:
                self.warn(f"stage {stage.name!r}: cached {name} changed since it was written (content hash "
                          "mismatch); recomputing the stage")
                return False
        return True

    def _stand_ins(self) -> list[dict[str, str]]:
        out = []
        for kind in KINDS:
            cfg = self.config.component(kind)
            if cfg is None:
                continue
            try:
                m = self.registry.get(kind, cfg.plugin).manifest
            except PluginError:
                continue
            if self.provided_by_scene(kind):
                continue
            if m.stand_in or "stand_in" in m.capabilities:
                out.append({"kind": kind, "plugin": m.name, "what": m.description})
        if self.scene is not None:
            for kind, fname in self.scene.provided().items():
                out.append({"kind": kind, "plugin": "scene", "what": f"{fname} from the scene folder {self.scene.path}"})
        return out

    def _write_header(self) -> None:
        atomic_write_text(self.out_dir / "config.yaml", self.config.to_yaml())
        plugins = {}
        for kind in KINDS:
            cfg = self.config.component(kind)
            if cfg is None:
                continue
            try:
                e = self.registry.get(kind, cfg.plugin)
                plugins[kind] = {"plugin": cfg.plugin, "package": e.distribution, "version": e.version}
            except PluginError as err:
                plugins[kind] = {"plugin": cfg.plugin, "error": str(err)}
        manifest = {"dream2flow": __version__, "python": platform.python_version(),
                    "machine": platform.machine(), "seed": self.seed, "plugins": plugins,
                    "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        atomic_write_text(self.out_dir / "manifest.json", json.dumps(manifest, indent=2))

    def _write_result(self) -> None:
        atomic_write_text(self.out_dir / "result.json", json.dumps(self.result, indent=2, default=_json_default))


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


# ====================================================================== stage implementations


def _observe(run: Run) -> Observation:
    if run.scene is not None:
        return Observation(rgbd=run.scene.rgbd, joints=np.zeros(0))
    world = run.component("world")
    obs = world.reset(run.seed)
    if not isinstance(obs, Observation):
        raise DataError(f"world.reset returned {type(obs).__name__}, expected d2f_core.Observation")
    if obs.rgbd is None:
        obs = Observation(rgbd=world.render(), joints=obs.joints, state=obs.state, privileged=obs.privileged)
    return obs


def _save_observe(run: Run, obs: Observation) -> None:
    np.savez_compressed(run.out_dir / "observation.npz", rgb=obs.rgbd.rgb, depth=obs.rgbd.depth,
                        joints=obs.joints, camera=json.dumps(obs.rgbd.camera.to_json()))


def _video(run: Run) -> Video:
    obs: Observation = run.artifacts["observe"]
    cam = obs.rgbd.camera
    if run.provided_by_scene("video"):
        video = run.scene.video
    else:
        model = run.component("video")
        prompt = run.config.flow.prompt_template.format(task=run.task.instruction)
        extra = {}
        world = run.component("world") if run.config.world is not None else None
        if world is not None and "goal_image" in getattr(world, "capabilities", ()) and \
                "end_frame_conditioning" in getattr(model, "capabilities", ()):
            # a world that shows the task done (Push-T's T at its goal) conditions the video's last frame
            extra["last_image"] = world.goal_image()
        video = model.generate(obs.rgbd.rgb, prompt, num_frames=run.config.flow.num_frames, seed=run.seed,
                               **extra)
        if not isinstance(video, Video):
            raise DataError(f"video plugin returned {type(video).__name__}, expected d2f_core.Video")
    run.video_framing = None
    if (video.width, video.height) == (cam.width, cam.height):
        return video
    # Resolution handling: back into camera pixels, so K and T_world_cam stay exact downstream.
    from .flow.resolution import framing_for, frames_to_camera
    framing = video.framing
    if framing is None:
        framing = framing_for(cam.width, cam.height, video.width, video.height, run.config.flow.video_framing)
        run.warn(f"video: {video.width}x{video.height} frames for a {cam.width}x{cam.height} camera and the "
                 f"video plugin did not say how it framed the image; assumed flow.video_framing="
                 f"{run.config.flow.video_framing!r}")
    elif (framing.width, framing.height) != (video.width, video.height):
        raise DataError(f"video: frames are {video.width}x{video.height} but the plugin's framing describes "
                        f"{framing.width}x{framing.height} frames")
    save_frames(run.out_dir / "video_native.npz", video.frames, fps=video.fps)
    frames, covered = frames_to_camera(video.frames, framing, cam.width, cam.height)
    run.video_framing = framing
    run.result["video_framing"] = {**framing.to_json(), "native_size": [video.width, video.height],
                                   "camera_covered_fraction": round(float(covered.mean()), 4)}
    if not covered.all():
        run.warn(f"video: the model's frames cover {covered.mean():.0%} of the camera image "
                 f"({framing.mode} framing); points outside are not tracked reliably")
    return Video(frames=frames, fps=video.fps, model=video.model, prompt=video.prompt, seed=video.seed)


def _save_video(run: Run, video: Video) -> None:
    meta = {"model": video.model, "prompt": video.prompt, "seed": video.seed,
            "framing": run.video_framing.to_json() if run.video_framing else None}
    # lossless (frame differences + zlib level 1, d2f_core.artifacts): ~1.4 MB instead of 45 MB raw
    save_frames(run.out_dir / "video.npz", video.frames, fps=video.fps, meta=json.dumps(meta))
    if not run.provided_by_scene("video"):  # the scene folder already has it as rgb.mp4
        _try_write_mp4(run.out_dir / "video.mp4", video.frames, video.fps)


def _load_video(run: Run) -> Video:
    path = run.out_dir / "video.npz"
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        framing = meta.pop("framing", None)
        run.video_framing = Framing(**framing) if framing else None
        return Video(frames=decode_frames(z, str(path)), fps=float(z["fps"]), **meta)


def _depth(run: Run) -> DepthVideo:
    video: Video = run.artifacts["video"]
    cam = run.artifacts["observe"].rgbd.camera
    if run.provided_by_scene("depth"):
        est = DepthVideo(depth=run.scene.depth_frames, metric=False, model=f"scene:{run.scene.depth_frames_file}")
        where = f"{run.scene.path}/{run.scene.depth_frames_file}"
    else:
        est = run.component("depth").estimate(video)
        if not isinstance(est, DepthVideo):
            raise DataError(f"depth plugin returned {type(est).__name__}, expected d2f_core.DepthVideo")
        where = f"depth plugin {run.config.depth.plugin!r}"
    depth = est.depth
    if depth.shape[0] != video.num_frames:
        raise DataError(f"{where}: {depth.shape[0]} depth frames for a {video.num_frames}-frame video; "
                        "give one depth map per video frame")
    if depth.shape[1:] != (cam.height, cam.width):
        fr = run.video_framing
        if fr is not None and depth.shape[1:] == (fr.height, fr.width):
            from .flow.resolution import depth_to_camera
            depth = depth_to_camera(depth, fr, cam.width, cam.height)
        else:
            raise DataError(f"{where}: depth frames are {depth.shape[2]}x{depth.shape[1]} but the camera image "
                            f"is {cam.width}x{cam.height}; give depth at the camera's (or the video's) size")
    d0 = run.artifacts["observe"].rgbd.depth
    al = fit_scale_shift(depth[0], d0, mode=run.config.flow.align)
    # kept as depth.npz stores it (0.1 mm steps, d2f_core.artifacts): a resumed run sees the same numbers
    return DepthVideo(depth=quantise_depth(apply_alignment(depth, al)), metric=True, alignment=al,
                      model=est.model)


def _save_depth(run: Run, d: DepthVideo) -> None:
    a = d.alignment
    save_depth(run.out_dir / "depth.npz", d.depth, model=d.model,
               alignment=np.array([a.scale, a.shift, a.residual, a.num_pixels]))


def _load_depth(run: Run) -> DepthVideo:
    from .types import Alignment
    path = run.out_dir / "depth.npz"
    with np.load(path, allow_pickle=False) as z:
        s, b, r, n = z["alignment"].tolist()
        return DepthVideo(depth=decode_depth(z, str(path)), metric=True, model=str(z["model"]),
                          alignment=Alignment(scale=s, shift=b, residual=r, num_pixels=int(n)))


def _check_mask(mask: Any, shape: tuple[int, ...], who: str, what: str, run: "Run | None" = None) -> np.ndarray:
    """A segmenter's mask: bool H x W (else DataError), not empty (DataError). A mask covering every pixel
    marks no object and leaves no background for the camera-motion check: a warning in result.json when
    ``run`` is given (tiny random-weight smoke models produce it), else a DataError."""
    if not isinstance(mask, np.ndarray) or mask.dtype != bool or mask.shape != shape:
        raise DataError(f"{who} returned {getattr(mask, 'dtype', type(mask).__name__)} "
                        f"{getattr(mask, 'shape', '')}; expected a bool mask of {shape}")
    if not mask.any():
        raise DataError(f"{who} found no {what!r} in the first frame (empty mask)")
    if mask.all():
        text = (f"{who} marked every pixel as {what!r} (a mask covering the whole image marks no object and "
                "leaves no background for the camera-motion check); check the prompt or the segmenter")
        if run is None:
            raise DataError(text)
        run.warn(f"segment: {text}")
    return mask


def _segment(run: Run) -> np.ndarray:
    if run.provided_by_scene("segmenter"):
        return run.scene.mask
    rgb = run.artifacts["observe"].rgbd.rgb
    mask = run.component("segmenter").segment(rgb, run.task.object)
    return _check_mask(mask, rgb.shape[:2], f"segmenter {run.config.segmenter.plugin!r}", run.task.object, run)


def _background_queries(rgbd: RGBD, mask: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Up to n (t=0, x, y) queries on the static background: valid depth, away from the object."""
    if n <= 0:
        return np.zeros((0, 3), np.float32)
    near = ~erode(~mask, 12)  # the object dilated by 12 px
    m = ~near & rgbd.valid
    H, W = mask.shape
    m[:8], m[-8:], m[:, :8], m[:, -8:] = False, False, False, False  # image border: tracks drift out
    ys, xs = np.nonzero(m)
    if len(xs) == 0:
        return np.zeros((0, 3), np.float32)
    xy = np.stack([xs, ys], -1).astype(np.float64)
    if len(xy) > 20000:  # FPS on a random subset: spread out, bounded cost
        xy = xy[np.random.default_rng(seed).choice(len(xy), 20000, replace=False)]
    idx = farthest_point_sampling(xy, n, seed)
    return np.concatenate([np.zeros((len(idx), 1)), xy[idx]], 1).astype(np.float32)


def _columns(tracks: Tracks2D, index: Any) -> Tracks2D:
    """The tracks of the points ``index`` selects (a slice, indices or a bool mask over points)."""
    return Tracks2D(xy=tracks.xy[:, index], visible=tracks.visible[:, index], query_frame=tracks.query_frame[index])


def _track_points(run: Run, queries: np.ndarray, background: np.ndarray) -> tuple[Tracks2D, Tracks2D | None]:
    allq = np.concatenate([queries, background]) if len(background) else queries
    tracks = run.component("tracker").track(run.artifacts["video"], allq)
    if not isinstance(tracks, Tracks2D):
        raise DataError(f"tracker returned {type(tracks).__name__}, expected d2f_core.Tracks2D")
    if tracks.num_points != len(allq):
        raise DataError(f"tracker returned {tracks.num_points} tracks for {len(allq)} queries")
    n = len(queries)
    return _columns(tracks, slice(None, n)), (_columns(tracks, slice(n, None)) if len(background) else None)


def _track(run: Run) -> dict[str, Any]:
    from .flow.movable import prompt_points, split_movable
    cfg = run.config.flow
    rgbd = run.artifacts["observe"].rgbd
    mask = run.artifacts["segment"]
    queries, _ = sample_object_points(rgbd, mask, cfg.num_points, erode_px=cfg.erode_px, seed=run.seed)
    background = _background_queries(rgbd, mask, cfg.background_points, run.seed)
    tracks, bg = _track_points(run, queries, background)
    info: dict[str, Any] = {"method": "none", "num_points": int(len(queries))}
    part_mask = None
    if cfg.movable_filter:
        moving, static = split_movable(tracks, cfg.movable_threshold_px)
        info.update(moving=int(moving.sum()), static=int(static.sum()),
                    unjudged=int(len(queries) - moving.sum() - static.sum()))
        if moving.any() and static.sum() >= cfg.movable_min_static * (moving.sum() + static.sum()):
            seg = None
            if run.config.segmenter is not None:
                try:
                    seg = run.component("segmenter")
                except Exception as e:  # noqa: BLE001 - re-prompting is an improvement, not a need
                    run.warn(f"movable part: segmenter unavailable for re-prompting ({e}); filtering tracks")
            q_xy = queries[:, 1:3]
            if seg is not None and "point_prompts" in getattr(seg, "capabilities", ()):
                pts, labels = prompt_points(q_xy, moving, static, seed=run.seed)
                part = seg.segment(rgbd.rgb, run.task.object, points=pts, labels=labels)
                part = _check_mask(part, rgbd.rgb.shape[:2], "segmenter (movable-part re-prompt)", run.task.object,
                                   run)
                # the movable part of the object: inside the object's mask, where a mask was given
                part_mask = part & mask if (part & mask).any() else part
                queries, _ = sample_object_points(rgbd, part_mask, cfg.num_points, erode_px=cfg.erode_px,
                                                  seed=run.seed)
                tracks, _ = _track_points(run, queries, np.zeros((0, 3), np.float32))
                info.update(method="reprompt", prompt_points=pts.tolist(), prompt_labels=labels.tolist(),
                            num_points=int(len(queries)))
            else:
                queries, tracks = queries[moving], _columns(tracks, moving)
                info.update(method="filter", num_points=int(len(queries)))
        elif not moving.any():
            run.warn("movable part: no track moves more than "
                     f"{cfg.movable_threshold_px} px/frame: the object seems static in the video")
    return {"queries": queries, "tracks": tracks, "background": bg, "movable": info, "part_mask": part_mask}


def _save_track(run: Run, a: dict[str, Any]) -> None:
    t: Tracks2D = a["tracks"]
    bg: Tracks2D | None = a["background"]
    extra = {}
    if bg is not None:
        extra = {"bg_xy": bg.xy, "bg_visible": bg.visible, "bg_query_frame": bg.query_frame}
    if a["part_mask"] is not None:
        extra["part_mask"] = a["part_mask"]
    np.savez_compressed(run.out_dir / "tracks.npz", queries=a["queries"], xy=t.xy, visible=t.visible,
                        query_frame=t.query_frame, movable=json.dumps(a["movable"]), **extra)


def _load_track(run: Run) -> dict[str, Any]:
    with np.load(run.out_dir / "tracks.npz") as z:
        bg = (Tracks2D(xy=z["bg_xy"], visible=z["bg_visible"], query_frame=z["bg_query_frame"])
              if "bg_xy" in z.files else None)
        return {"queries": z["queries"],
                "tracks": Tracks2D(xy=z["xy"], visible=z["visible"], query_frame=z["query_frame"]),
                "background": bg, "movable": json.loads(str(z["movable"])),
                "part_mask": z["part_mask"] if "part_mask" in z.files else None}


def _flow(run: Run) -> ObjectFlow:
    from .flow.quality import QualityThresholds, quality_report
    rgbd: RGBD = run.artifacts["observe"].rgbd
    tr = run.artifacts["track"]
    tracks: Tracks2D = tr["tracks"]
    q = tr["queries"]
    colors = rgbd.rgb[np.round(q[:, 2]).astype(int), np.round(q[:, 1]).astype(int)]
    depth: DepthVideo = run.artifacts["depth"]
    video: Video = run.artifacts["video"]
    al = depth.alignment
    prov = {"video": video.model, "prompt": video.prompt, "seed": run.seed,
            "tracker": run.config.tracker.plugin if run.config.tracker else None,
            "depth": depth.model,
            "alignment": {"scale": al.scale, "shift": al.shift, "residual": al.residual,
                          "num_pixels": al.num_pixels} if al else None,
            "movable": {k: v for k, v in tr["movable"].items() if not k.startswith("prompt")}}
    flow = lift_tracks(tracks, depth.depth, rgbd.camera, colors=colors, fps=video.fps, provenance=prov)
    qc = run.config.flow.quality
    rigid = run.config.task.rigid if run.config.task is not None else True
    run.quality = quality_report(
        flow, tracks, background=tr["background"], rigid=rigid,
        image_size=(rgbd.camera.width, rgbd.camera.height),
        thresholds=QualityThresholds(**qc.model_dump()),
        extra={"alignment": prov["alignment"], "movable": tr["movable"], "video": video.model,
               "video_framing": run.result.get("video_framing")})
    for w in run.quality["warnings"]:
        run.warn(f"flow quality: {w}")
    return flow


def _load_flow(run: Run) -> ObjectFlow:
    qpath = run.out_dir / "flow.quality.json"
    if qpath.is_file():
        run.quality = json.loads(qpath.read_text())
    pictures = {name: f for name, f in (("overlay", "flow_overlay.mp4"), ("plot3d", "flow_3d.png"),
                                        ("rerun", "flow.rrd")) if (run.out_dir / f).is_file()}
    if pictures:  # a resumed run still lists the pictures its cached flow stage drew
        run.result.setdefault("pictures", {}).update(pictures)
    return ObjectFlow.load(run.out_dir / "flow.npz")


def _save_flow(run: Run, flow: ObjectFlow) -> None:
    from .flow import viz
    flow.save(run.out_dir / "flow.npz")
    quality = getattr(run, "quality", None)
    if quality is not None:
        (run.out_dir / "flow.quality.json").write_text(json.dumps(quality, indent=1, default=_json_default))
    if not run.config.flow.pictures:
        return
    video: Video = run.artifacts["video"]
    tracks: Tracks2D = run.artifacts["track"]["tracks"]
    pictures = {}
    for name, (path, why) in {
        "overlay": viz.write_overlay(run.out_dir / "flow_overlay.mp4", video.frames, tracks, video.fps),
        "plot3d": viz.write_plot3d(run.out_dir / "flow_3d.png", flow, title=f"{run.task.instruction}: "
                                   f"{flow.num_points} points x {flow.num_frames} frames"),
    }.items():
        if path is not None:
            pictures[name] = path.name
        else:
            run.warn(why)
    if run.config.flow.rerun:
        path, why = viz.write_rerun(run.out_dir / "flow.rrd", flow, frames=video.frames, tracks=tracks)
        if path is not None:
            pictures["rerun"] = path.name
        else:
            run.warn(why)
    run.result.setdefault("pictures", {}).update(pictures)


def _hands(run: Run) -> HandTrack:
    return run.component("hand").detect(run.artifacts["video"])


def _save_hands(run: Run, h: HandTrack) -> None:
    np.savez_compressed(run.out_dir / "hands.npz", keypoints=h.keypoints, present=h.present)


def _load_hands(run: Run) -> HandTrack:
    with np.load(run.out_dir / "hands.npz") as z:
        return HandTrack(keypoints=z["keypoints"], present=z["present"])


def _grasp(run: Run) -> dict[str, Any]:
    from .grasp_choice import choose_grasp
    rgbd: RGBD = run.artifacts["observe"].rgbd
    candidates = run.component("grasper").propose(rgbd, run.artifacts["segment"], top_k=run.config.grasp.top_k)
    if not candidates:
        raise DataError("grasper proposed no grasp on the object; check the mask and depth")
    hands = run.artifacts.get("hands")
    depth = run.artifacts["depth"].depth
    index, reason = choose_grasp(candidates, run.artifacts["flow"], hands=hands, depth=depth,
                                 camera=rgbd.camera, radius=run.config.grasp.thumb_radius_m)
    return {"candidates": candidates, "chosen": index, "reason": reason}


def _save_grasp(run: Run, g: dict[str, Any]) -> None:
    (run.out_dir / "grasps.json").write_text(json.dumps(
        {"chosen": g["chosen"], "reason": g["reason"], "candidates": [c.to_json() for c in g["candidates"]]},
        indent=1))


def _load_grasp(run: Run) -> dict[str, Any]:
    d = json.loads((run.out_dir / "grasps.json").read_text())
    return {"chosen": d["chosen"], "reason": d["reason"],
            "candidates": [Grasp(T_world_grasp=np.array(c["T_world_grasp"]), width=c["width"],
                                 score=c["score"], source=c.get("source", "")) for c in d["candidates"]]}


def _plan(run: Run) -> Any:
    flow: ObjectFlow = run.artifacts["flow"]
    g = run.artifacts.get("grasp")
    grasp = g["candidates"][g["chosen"]] if g else None
    extras = {"video": run.artifacts.get("video"), "depth": run.artifacts.get("depth"),
              "mask": run.artifacts.get("segment"), "hands": run.artifacts.get("hands")}
    if g:  # the chosen grasp first, then the others nearest to it: solvers fall back along this list
        chosen = g["candidates"][g["chosen"]]
        others = [c for i, c in enumerate(g["candidates"]) if i != g["chosen"]]
        others.sort(key=lambda c: float(np.linalg.norm(c.position - chosen.position)))
        extras["grasp_candidates"] = [chosen] + others
    problem = Problem(flow=flow, observation=run.artifacts["observe"], embodiment=run.component("embodiment"),
                      task=run.task, grasp=grasp, dynamics=run.component("dynamics"),
                      estimator=run.component("estimator"), reward=run.component("reward"),
                      world=run.component("world"), seed=run.seed, extras=extras)
    solver = run.component("solver")
    policy = solver.solve(problem)
    lacking = [m for m in ("reset", "act") if not callable(getattr(policy, m, None))]
    if lacking:
        raise DataError(f"solver {getattr(solver, 'name', '?')!r} returned {type(policy).__name__} without "
                        f"{' and '.join(m + '(observation)' for m in lacking)}; solve() must return a "
                        "d2f_core.Agent (reset(observation), act(observation) -> action or None)")
    info = getattr(policy, "info", {})
    (run.out_dir / "plan.json").write_text(json.dumps(info, indent=1, default=_json_default))
    opt = info.get("optimiser") if isinstance(info.get("optimiser"), dict) else {}
    run.result["plan"] = {k: v for k, v in {
        "solver": info.get("solver"), "executable": getattr(policy, "executable", True),
        "reason": info.get("reason") or None, "tracking_error_mm": opt.get("max_error_mm"),
        "optimiser_seconds": opt.get("seconds"), "waypoints": (info.get("path") or {}).get("waypoints"),
        "phases": info.get("phases"), "dynamics": info.get("dynamics")}.items() if v is not None}
    if getattr(policy, "executable", True) is False:
        run.result["executable"] = False
        run.result["message"] = f"plan not executed: {info.get('reason', 'the solver refused it')}"
        run.warn(run.result["message"])
    _plan_picture(run, policy)
    return policy


def _plan_picture(run: Run, policy: Any) -> None:
    """plan_3d.png: the motion to follow, the held points as the plan moves them, the end-effector path."""
    solver = run.component("solver")
    last = getattr(solver, "last", None)
    if not isinstance(last, dict) or "targets" not in last or not run.config.flow.pictures:
        return
    try:
        from .flow.viz import write_plan_plot
    except ImportError:
        return
    try:
        write_plan_plot(run.out_dir / "plan_3d.png", last["targets"], last["visible"], last["predicted"],
                        title=f"{run.task.instruction}: {getattr(solver, 'name', 'solver')} plan")
        run.result.setdefault("pictures", {})["plan"] = "plan_3d.png"
    except Exception as e:  # a picture never fails a run
        run.warn(f"plan picture not written: {type(e).__name__}: {e}")


def _execute(run: Run) -> dict[str, Any]:
    """One episode: ``rollout(FlowEnv(world, reward, estimator, flow), agent, seed)``."""
    from .acting.env import FlowEnv
    from .acting.rollout import rollout

    world = run.component("world")
    agent = run.artifacts["plan"]
    cfg = run.config.execute
    env = FlowEnv(world, reward=run.component("reward"), estimator=run.component("estimator"),
                  flow=run.artifacts.get("flow"), horizon=cfg.max_steps, base_seed=run.seed,
                  stop_on_success=cfg.stop_on_success)
    frames: list[np.ndarray] | None = [] if cfg.record_video else None
    control = float(getattr(world, "control_freq", None) or 10.0)
    video = run.artifacts.get("video")
    want = cfg.video_fps or (video.fps if video is not None else None)
    # render only at the video's frame rate: a 640x480 frame costs more than a simulated step
    every = max(1, int(control / want + 0.5)) if want else 1
    trace: list[dict[str, Any]] = []
    report = rollout(env, agent, run.seed, frames=frames, frame_every=every, trace=trace,
                     progress=lambda done, total: run.progress("execute", done, total, ""))
    out = report.to_json()
    out["privileged_final"] = dict(report.final_state)
    info = getattr(agent, "info", None)
    if isinstance(info, dict) and info.get("replans") is not None:
        # a closed-loop agent's report grew while it acted (replans, t*, each push): agent.json keeps the end of
        # it (plan.json is the plan stage's cached output and stays as written)
        atomic_write_text(run.out_dir / "agent.json", json.dumps(info, indent=1, default=_json_default))
    if frames:
        arr = np.stack(frames)
        fps = control / every
        steps = list(range(0, report.steps + 1, every))
        if steps[-1] != report.steps:
            steps.append(report.steps)
        sparse = {"frame_steps": np.asarray(steps[:len(arr)], np.int64), "fps": np.float64(fps),
                  "frame_every": np.int64(every), "control_freq": np.float64(control),
                  "rewards": np.asarray(report.rewards, np.float64),
                  "shape": np.asarray(arr.shape, np.int64)}
        # rollout.npz: the sparse state (which step each video frame shows, rewards); the frames themselves
        # are rollout.mp4, and only without a movie writer they go (lossless) into rollout.npz
        wrote = _try_write_mp4(run.out_dir / "rollout.mp4", arr, fps)
        with open(run.out_dir / "rollout.npz", "wb") as f:
            if wrote:
                np.savez_compressed(f, **sparse)
            else:
                np.savez(f, **encode_frames(arr), **{k: v for k, v in sparse.items() if k != "shape"})
        if wrote:
            run.result.setdefault("pictures", {})["rollout"] = "rollout.mp4"
        if _rollout_sheet(run.out_dir / "rollout.png", arr):
            run.result.setdefault("pictures", {})["frames"] = "rollout.png"
        pictures = getattr(agent, "episode_pictures", None)
        if callable(pictures):
            # the solver draws what it did over the rollout (random shooting: its subgoals, errors per push)
            try:
                made = pictures(run.out_dir, frames=arr, frame_steps=np.asarray(steps[:len(arr)]), fps=fps,
                                camera=getattr(world, "camera", None), trace=trace)
                run.result.setdefault("pictures", {}).update(made or {})
            except Exception as e:  # noqa: BLE001 - a picture must not fail the episode
                run.warn(f"execute: the solver's pictures failed ({type(e).__name__}: {e})")
    run.result.update(success=report.success, steps=report.steps, privileged_final=out["privileged_final"],
                      episode={k: out[k] for k in ("return", "ended", "seconds")})
    if not report.success:
        run.result["message"] = report.reason
    run._notify("d2f_episode_finished", result=run.result)
    return out


def _rollout_sheet(path: Path, frames: np.ndarray, n: int = 8) -> bool:
    """rollout.png: n frames of the rollout, evenly spaced, in a 2-row contact sheet (half size)."""
    try:
        import imageio.v2 as iio
    except ImportError:
        return False
    idx = np.linspace(0, len(frames) - 1, min(n, len(frames))).astype(int)
    tiles = [f[::2, ::2] for f in frames[idx]]
    while len(tiles) % 2:
        tiles.append(np.zeros_like(tiles[0]))
    half = len(tiles) // 2
    sheet = np.vstack([np.hstack(tiles[:half]), np.hstack(tiles[half:])]) if half else tiles[0]
    try:
        iio.imwrite(path, sheet)
        return True
    except Exception:
        return False


def _try_write_mp4(path: Path, frames: np.ndarray, fps: float) -> bool:
    """Write an mp4 when imageio + ffmpeg are installed (extra io); the .npz is always written."""
    try:
        import imageio.v2 as iio
    except ImportError:
        return False
    try:
        h, w = frames.shape[1:3]
        pad = ((0, 0), (0, (-h) % 2), (0, (-w) % 2), (0, 0))
        # x264 preset veryfast: about 30 % less encoding time than the default, and no larger here
        iio.mimwrite(path, np.pad(frames, pad, mode="edge"), fps=fps, macro_block_size=1,
                     ffmpeg_params=["-preset", "veryfast"])
        return True
    except Exception:
        return False


_DEPENDS: dict[str, tuple[str, ...]] = {
    "video": ("observe",), "depth": ("observe", "video"), "segment": ("observe",),
    "track": ("observe", "video", "segment"), "flow": ("observe", "video", "depth", "track"),
    "hands": ("video",), "grasp": ("observe", "segment", "depth", "flow"),
    "plan": ("observe", "flow"), "execute": ("observe", "plan"),
}

STAGES: list[Stage] = [
    Stage("observe", ("world",), _observe, _save_observe, inputs=("world", "embodiment", "scene")),
    Stage("video", ("video",), _video, _save_video, _load_video,
          inputs=("task", "flow.num_frames", "flow.prompt_template", "flow.video_framing")),
    Stage("hands", ("hand",), _hands, _save_hands, _load_hands),
    Stage("depth", ("depth",), _depth, _save_depth, _load_depth, inputs=("flow.align",)),
    Stage("segment", ("segmenter",), _segment, lambda r, m: np.savez_compressed(r.out_dir / "mask.npz", mask=m),
          lambda r: np.load(r.out_dir / "mask.npz")["mask"], inputs=("task",)),
    Stage("track", ("tracker",), _track, _save_track, _load_track,
          inputs=("flow.num_points", "flow.erode_px", "flow.movable_filter", "flow.movable_threshold_px",
                  "flow.movable_min_static", "flow.background_points")),
    Stage("flow", (), _flow, _save_flow, _load_flow, inputs=("flow.quality", "task", "flow.pictures", "flow.rerun")),
    Stage("grasp", ("grasper",), _grasp, _save_grasp, _load_grasp, inputs=("grasp",)),
    Stage("plan", ("solver", "embodiment"), _plan),
    Stage("execute", ("world", "solver"), _execute, inputs=("execute",)),
]
