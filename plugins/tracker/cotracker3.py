"""``cotracker3`` tracker: CoTracker3 (facebookresearch/co-tracker), offline or online.

Install (CoTracker is not on PyPI)::

    pip install 'dream2flow[cotracker]'
    pip install git+https://github.com/facebookresearch/co-tracker.git
    # or: git clone https://github.com/facebookresearch/co-tracker && pip install -e co-tracker
    #     (or export COTRACKER_DIR=/path/to/co-tracker without installing it)

Weights: ``tracker.options.weights: /path/scaled_offline.pth`` (``scaled_online.pth`` for
``mode: online``), from https://huggingface.co/facebook/cotracker3. Without the option the torch
hub cache is used (``$TORCH_HOME/hub/checkpoints/scaled_{offline,online}.pth``, where
``torch.hub.load("facebookresearch/co-tracker", "cotracker3_offline")`` leaves them; its code
checkout ``$TORCH_HOME/hub/facebookresearch_co-tracker_main`` is used when the package is not
installed). Nothing is ever downloaded.

Conventions converted at this adapter's edge:

* model input: ``(1, T, 3, H, W)`` float32 **0-255 RGB** (CoTracker3 normalises with
  ``2 * (x / 255) - 1`` itself; feeding 0-1 floats shows it an almost black video). The video's
  uint8 RGB frames are only cast and transposed: no /255, no channel swap
  (``model_input_spec``; the conformance check ``model_input_convention`` verifies it).
* queries: ``(1, N, 3)`` float ``(t, x, y)``, pixels of the input video, as ours.
* output: tracks ``(1, T, N, 2)`` pixels, visibility ``(1, T, N)`` (``(1, T, N, 1)`` in older
  versions). At its query frame every point is put exactly at its query and marked visible (the
  offline predictor does this itself; the online one does not). In online mode frames before a
  point's query frame are marked invisible (online tracking only runs forward).

Visibility follows the upstream predictors, which threshold it themselves and return booleans:
``CoTrackerPredictor`` marks a point visible when the model's visibility probability exceeds
0.9; ``CoTrackerOnlinePredictor`` when visibility x confidence exceeds 0.6 (cotracker/predictor.py,
CoTracker3 release). The adapter keeps those booleans as they are. A predictor that returns
probabilities instead (not the upstream's) is thresholded with the same rule (0.9 offline, 0.6
online). There is no threshold option: the former ``visibility_threshold`` never reached the
upstream predictors and is refused with that explanation.

Version: the ``offline=`` / ``v2=`` keywords the adapter passes exist since the CoTracker3 release
(co-tracker 3.0, October 2024); ``available()`` reads the predictor's source (no import, no torch)
and reports an older checkout or install with the fix.

Devices: ``device: auto`` (CUDA when available), ``dtype: auto`` (float32, as the upstream demo
runs; ``bfloat16``/``float16`` run the forward passes under ``torch.autocast``).

Long videos: offline CoTracker3 holds every frame of the video at the model resolution and its
features at once (memory grows with the length). ``chunk_frames`` tracks the video in chunks of
that many frames that overlap by ``chunk_overlap`` frames: a point continues into the next chunk
from the last overlap frame where it was visible (its position there is the new query), and the
next chunk's results replace the previous ones from that frame on. ``mode: online`` is the
upstream's own memory-bounded path (sliding windows of 16 frames).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from d2f_core import DataError, Manifest, ModelInputSpec, Tracks2D, Video, hookimpl
from d2f_core.devices import DEVICE_HELP, DTYPE_HELP, DTypeName, Needs, autocast, choose
from d2f_core.registry import PluginUnavailableError
from d2f_core.validate import check_queries, check_video
from d2f_plugins._checkout import add_to_path

__all__ = ["CoTrackerOptions", "CoTracker3Tracker", "hub_dir"]

UPSTREAM = "https://github.com/facebookresearch/co-tracker"
INSTALL = (f"pip install git+{UPSTREAM}.git (or clone it and set COTRACKER_DIR to the checkout)")
WEIGHTS_URL = "https://huggingface.co/facebook/cotracker3/resolve/main/scaled_{mode}.pth"
WINDOW_LEN = {"offline": 60, "online": 16}  # the upstream hub entry points' values for CoTracker3
UPSTREAM_VISIBILITY = {"offline": 0.9, "online": 0.6}
"""Thresholds of the upstream predictors: offline visibility > 0.9, online visibility x confidence > 0.6."""


def _default_weights(o: Any) -> dict[str, Any]:
    return {"weights": Path(o.weights).expanduser() if o.weights
            else hub_dir() / "checkpoints" / f"scaled_{o.mode}.pth"}


class CoTrackerOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    weights: str | None = Field(default=None, description=(
        "local CoTracker3 checkpoint (scaled_offline.pth for mode offline, scaled_online.pth for "
        "online); default: the torch hub cache's checkpoints folder. Never downloaded"))
    mode: Literal["offline", "online"] = Field(default="offline", description=(
        "offline: the whole video at once (CoTrackerPredictor, window 60); online: sliding "
        "windows of 16 frames, frame by frame (CoTrackerOnlinePredictor)"))
    backward_tracking: bool = Field(default=False, description=(
        "offline only: also track backwards from each query frame (queries after frame 0)"))
    visibility_threshold: float | None = Field(default=None, description=(
        "not an option: CoTracker3's predictors threshold visibility themselves (offline > 0.9, online "
        "visibility x confidence > 0.6) and return booleans"))
    device: str = Field(default="auto", description=DEVICE_HELP)
    dtype: DTypeName = Field(default="auto", description=DTYPE_HELP + "; auto = float32, as the upstream demo")
    chunk_frames: int | None = Field(default=None, ge=2, description=(
        "offline only: track long videos in chunks of this many frames (memory bounded by the chunk); "
        "None = the whole video at once"))
    chunk_overlap: int = Field(default=8, ge=1, description=(
        "frames shared by consecutive chunks; a point continues from its last visible overlap frame"))

    needs: ClassVar[Needs] = Needs(
        weights=("weights",), gpu_gb=6.0, gpu_gb_min=2.0, disk_gb=0.2,
        source="https://huggingface.co/facebook/cotracker3 (scaled_offline.pth, scaled_online.pth)",
        memory_options="chunk_frames (offline) or mode: online", default_weights=_default_weights)

    @field_validator("visibility_threshold")
    @classmethod
    def _no_threshold(cls, v: float | None) -> None:
        if v is not None:
            raise ValueError("CoTracker3's predictors return visibility already thresholded (offline: probability "
                             "> 0.9; online: visibility x confidence > 0.6), so this option had no effect; "
                             "delete tracker.options.visibility_threshold")
        return None

    @model_validator(mode="after")
    def _overlap(self) -> "CoTrackerOptions":
        if self.chunk_frames is not None and self.chunk_overlap >= self.chunk_frames:
            raise ValueError(f"chunk_overlap ({self.chunk_overlap}) must be smaller than chunk_frames "
                             f"({self.chunk_frames})")
        return self


def hub_dir() -> Path:
    """torch.hub's folder, computed like torch does but without importing torch."""
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "torch")
    return Path(torch_home) / "hub"


def _checkout_dirs() -> list[Path]:
    """Folders holding a CoTracker checkout (``cotracker/predictor.py``), in order of preference."""
    out = []
    env = os.environ.get("COTRACKER_DIR")
    if env:
        out.append(Path(env).expanduser())
    out.append(hub_dir() / "facebookresearch_co-tracker_main")
    return [d for d in out if (d / "cotracker" / "predictor.py").is_file()]


def _library_present() -> bool:
    if "cotracker" in sys.modules:
        return True
    try:
        if importlib.util.find_spec("cotracker") is not None:
            return True
    except (ImportError, ValueError):
        pass
    return bool(_checkout_dirs())


def _predictor_sources() -> list[Path]:
    """``cotracker/predictor.py`` files that ``import cotracker.predictor`` would find, in order
    (installed package first, then the checkouts), without importing anything."""
    out: list[Path] = []
    mod = sys.modules.get("cotracker")
    locations = list(getattr(mod, "__path__", None) or []) if mod is not None else []
    if not locations:
        try:
            spec = importlib.util.find_spec("cotracker")
        except (ImportError, ValueError):
            spec = None
        if spec is not None:
            locations = list(spec.submodule_search_locations or [])
    out += [Path(loc) / "predictor.py" for loc in locations]
    out += [d / "cotracker" / "predictor.py" for d in _checkout_dirs()]
    return [p for p in out if p.is_file()]


def predictor_keywords(source: str) -> set[str] | None:
    """The keyword parameters of ``CoTrackerPredictor.__init__`` in a predictor.py source (None when
    the class is not there)."""
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "CoTrackerPredictor":
            for fn in node.body:
                if isinstance(fn, ast.FunctionDef) and fn.name == "__init__":
                    a = fn.args
                    return {x.arg for x in a.args + a.kwonlyargs} - {"self"}
    return None


NEEDED_KEYWORDS = frozenset({"offline", "v2", "window_len"})
"""What the adapter passes to the predictors: present since the CoTracker3 release (co-tracker 3.0)."""


def _version_problem() -> str | None:
    for src in _predictor_sources():
        try:
            kws = predictor_keywords(src.read_text(errors="replace"))
        except OSError:
            continue
        if kws is None:
            return f"{src} defines no CoTrackerPredictor; {INSTALL}"
        missing = sorted(NEEDED_KEYWORDS - kws)
        if missing:
            return (f"the CoTracker at {src.parent.parent} predates CoTracker3 (CoTrackerPredictor takes no "
                    f"{', '.join(missing)}=): update it to co-tracker >= 3.0 (git pull, or pip install -U "
                    f"git+{UPSTREAM}.git)")
        return None
    return None


def _available() -> str | None:
    env = os.environ.get("COTRACKER_DIR")
    if env and not (Path(env).expanduser() / "cotracker" / "predictor.py").is_file():
        return f"COTRACKER_DIR={env} is not a CoTracker checkout (no cotracker/predictor.py); {INSTALL}"
    if not _library_present():
        return f"needs the CoTracker library (not installed): pip install 'dream2flow[cotracker]'; then {INSTALL}"
    return _version_problem()


def _import_predictor_module() -> Any:
    try:
        return importlib.import_module("cotracker.predictor")
    except ImportError:
        pass
    for d in _checkout_dirs():
        add_to_path(d)
        try:
            return importlib.import_module("cotracker.predictor")
        except ImportError:
            continue
    raise PluginUnavailableError(f"tracker plugin 'cotracker3' needs the CoTracker library (not installed): {INSTALL}")


def _resolve_weights(options: CoTrackerOptions) -> Path:
    if options.weights:
        p = Path(options.weights).expanduser()
        if not p.is_file():
            raise DataError(f"tracker.options.weights: CoTracker3 checkpoint not found: {p}; download "
                            f"{WEIGHTS_URL.format(mode=options.mode)} and give its local path")
        return p
    cached = hub_dir() / "checkpoints" / f"scaled_{options.mode}.pth"
    if cached.is_file():
        return cached
    raise PluginUnavailableError(
        f"tracker plugin 'cotracker3' needs weights: set tracker.options.weights to a local "
        f"scaled_{options.mode}.pth (download {WEIGHTS_URL.format(mode=options.mode)}); nothing is downloaded")


class CoTracker3Tracker:
    """Tracks queries with a CoTracker3 predictor (see the module docstring for conventions)."""

    name = "cotracker3"
    kind = "tracker"
    capabilities = frozenset({"needs_weights", "deterministic", "model_input", "online"})
    """Declared by the plugin; an offline instance (``mode: offline``) drops ``online``."""
    Options = CoTrackerOptions
    extra, requires, install = "cotracker", ("torch",), INSTALL
    available = staticmethod(_available)
    description = "CoTracker3 point tracker (offline or online), local checkpoint"
    verified = ("stand-in of the documented cotracker.predictor API (tests/standins/cotracker): "
                "all tracker checks incl. channel order and 0-255 input, offline and online")
    model_input_spec = ModelInputSpec(channel_order="RGB", value_range=(0.0, 255.0), layout="BTCHW")

    def __init__(self, predictor: Any, options: CoTrackerOptions | None = None) -> None:
        self.options = options or CoTrackerOptions()
        self.predictor = predictor
        self.device = choose(self.options.device, self.options.dtype, component="tracker cotracker3",
                             cuda_dtype=CoTrackerOptions.needs.cuda_dtype)
        if self.options.mode != "online":
            self.capabilities = frozenset(self.capabilities - {"online"})

    # ------------------------------------------------------------------ conversions
    def model_input(self, video: Video) -> Any:
        """The tensor CoTracker receives: float32 (1, T, 3, H, W), RGB, 0-255."""
        import torch

        check_video(video, "video")
        x = torch.from_numpy(np.array(video.frames, dtype=np.float32))  # T H W C, 0-255, a copy
        return x.permute(0, 3, 1, 2)[None].contiguous().to(self.device.device)

    def _queries(self, q: np.ndarray) -> Any:
        import torch

        return torch.from_numpy(np.ascontiguousarray(q, dtype=np.float32))[None].to(self.device.device)

    def _visibility(self, vis: Any, T: int, N: int) -> np.ndarray:
        """Visibility as the upstream predictors define it: their booleans as they are; probabilities
        (not what the upstream returns) thresholded with the upstream's rule for the mode."""
        v = vis.detach().float().cpu().numpy() if vis.dtype != _torch_bool() else vis.detach().cpu().numpy()
        if v.ndim == 4 and v.shape[-1] == 1:
            v = v[..., 0]
        v = v[0]
        if v.shape != (T, N):
            raise RuntimeError(f"CoTracker returned visibility of shape {tuple(vis.shape)}, expected (1, {T}, {N})")
        if v.dtype == np.bool_:
            return v
        return v > UPSTREAM_VISIBILITY[self.options.mode]

    # ------------------------------------------------------------------ tracking
    def _offline(self, x: Any, q: Any) -> tuple[Any, Any]:
        return self.predictor(x, queries=q, backward_tracking=self.options.backward_tracking)

    def _online(self, x: Any, q: Any) -> tuple[Any, Any]:
        import torch

        step = int(self.predictor.step)
        T = x.shape[1]
        if T <= step:  # the upstream loop needs more than one step of frames: repeat the last frame
            x = torch.cat([x, x[:, -1:].expand(-1, step + 1 - T, -1, -1, -1)], 1)
        N = q.shape[1]
        self.predictor(video_chunk=x, is_first_step=True, queries=q, add_support_grid=True)
        tracks = vis = None
        for ind in range(0, x.shape[1] - step, step):
            # upstream drops the support grid from the output only when the call says add_support_grid
            tracks, vis = self.predictor(video_chunk=x[:, ind: ind + 2 * step], add_support_grid=True)
        if tracks is None or tracks.shape[1] < T:
            got = None if tracks is None else tracks.shape[1]
            raise RuntimeError(f"online CoTracker returned tracks for {got} frames, the video has {T}")
        return tracks[:, :T, :N], vis[:, :T, :N]

    def _run(self, x: Any, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One predictor pass: (xy T x N x 2 float32, visible T x N bool)."""
        import torch

        T, N = x.shape[1], q.shape[0]
        with torch.no_grad(), autocast(self.device):
            if self.options.mode == "online":
                tracks, vis = self._online(x, self._queries(q))
            else:
                tracks, vis = self._offline(x, self._queries(q))
        xy = tracks.detach().float().cpu().numpy()
        if xy.shape != (1, T, N, 2):
            raise RuntimeError(f"CoTracker returned tracks of shape {tuple(tracks.shape)}, expected (1, {T}, {N}, 2)")
        return np.array(xy[0], dtype=np.float32), np.array(self._visibility(vis, T, N), dtype=bool)

    def _chunked(self, x: Any, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Offline tracking in overlapping chunks (see the module docstring)."""
        T, N = x.shape[1], q.shape[0]
        L, ov = int(self.options.chunk_frames), int(self.options.chunk_overlap)
        xy = np.full((T, N, 2), np.nan, np.float32)
        vis = np.zeros((T, N), bool)
        t_q = q[:, 0].astype(np.int64)
        started = np.zeros(N, bool)
        s = 0
        while True:
            e = min(T, s + L)
            rows, firsts, idx, hidden = [], [], [], []
            for n in range(N):
                if t_q[n] >= e:
                    continue  # its query frame is in a later chunk
                if t_q[n] >= s or not started[n]:  # its own query (frames from the chunk start are replaced)
                    a, first, pos = int(t_q[n]), s, q[n, 1:3]
                else:  # continue from the last overlap frame where it was visible (else the overlap's start)
                    seen = np.nonzero(vis[s:e, n] & np.isfinite(xy[s:e, n]).all(-1))[0]
                    a = s + int(seen[-1]) if len(seen) else s
                    first, pos = a, xy[a, n]
                    if not np.isfinite(pos).all():
                        continue
                rows.append([a - s, pos[0], pos[1]])
                firsts.append(first)
                idx.append(n)
                hidden.append(started[n] and t_q[n] < s and not vis[a, n])
            if idx:
                cxy, cvis = self._run(x[:, s:e], np.asarray(rows, np.float32))
                for j, n in enumerate(idx):
                    first = firsts[j]
                    xy[first:e, n] = cxy[first - s:, j]
                    vis[first:e, n] = cvis[first - s:, j]
                    if hidden[j]:  # continued from an occluded estimate: the predictor marks its query visible
                        vis[first, n] = False
                    started[n] = True
            if e >= T:
                break
            s = e - ov
        return xy, vis

    def track(self, video: Video, queries: np.ndarray) -> Tracks2D:
        check_video(video, "video")
        q = check_queries(queries, video)
        T, N = video.num_frames, q.shape[0]
        t_q = q[:, 0].astype(np.int64)
        if N == 0:
            return Tracks2D(xy=np.zeros((T, 0, 2), np.float32), visible=np.zeros((T, 0), bool),
                            query_frame=t_q)
        x = self.model_input(video)
        o = self.options
        if o.mode == "offline" and o.chunk_frames is not None and T > o.chunk_frames:
            xy, visible = self._chunked(x, q)
        else:
            xy, visible = self._run(x, q)
        n = np.arange(N)
        xy[t_q, n] = q[:, 1:3]
        visible[t_q, n] = True
        if self.options.mode == "online":
            visible &= np.arange(T)[:, None] >= t_q[None, :]
        bad = ~np.isfinite(xy).all(-1)
        visible &= ~bad
        xy[bad] = np.nan
        return Tracks2D(xy=xy, visible=visible, query_frame=t_q)


def _torch_bool() -> Any:
    import torch
    return torch.bool


def _factory(options: CoTrackerOptions | None, ctx: Any = None) -> CoTracker3Tracker:
    options = options or CoTrackerOptions()
    try:
        import torch  # noqa: F401
    except ImportError:
        raise PluginUnavailableError("tracker plugin 'cotracker3' needs torch (not installed): "
                                     "pip install 'dream2flow[cotracker]'") from None
    module = _import_predictor_module()
    weights = _resolve_weights(options)
    if options.mode == "online":
        predictor = module.CoTrackerOnlinePredictor(checkpoint=str(weights), offline=False, v2=False,
                                                    window_len=WINDOW_LEN["online"])
    else:
        predictor = module.CoTrackerPredictor(checkpoint=str(weights), offline=True, v2=False,
                                              window_len=WINDOW_LEN["offline"])
    tracker = CoTracker3Tracker(predictor, options)
    predictor = predictor.to(tracker.device.device)
    predictor.eval()
    tracker.predictor = predictor
    return tracker


@hookimpl
def d2f_register(register):
    register(Manifest.of(CoTracker3Tracker, factory=_factory))
