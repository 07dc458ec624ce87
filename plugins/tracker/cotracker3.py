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
  versions): bool from the predictor, or probabilities thresholded at ``visibility_threshold``.
  At its query frame every point is put exactly at its query and marked visible (the offline
  predictor does this itself; the online one does not). In online mode frames before a point's
  query frame are marked invisible (online tracking only runs forward).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from d2f_core import DataError, Manifest, ModelInputSpec, Tracks2D, Video, hookimpl
from d2f_core.registry import PluginUnavailableError
from d2f_core.validate import check_queries, check_video
from d2f_plugins._checkout import add_to_path

__all__ = ["CoTrackerOptions", "CoTracker3Tracker", "hub_dir"]

UPSTREAM = "https://github.com/facebookresearch/co-tracker"
INSTALL = (f"pip install git+{UPSTREAM}.git (or clone it and set COTRACKER_DIR to the checkout)")
WEIGHTS_URL = "https://huggingface.co/facebook/cotracker3/resolve/main/scaled_{mode}.pth"
WINDOW_LEN = {"offline": 60, "online": 16}  # the upstream hub entry points' values for CoTracker3


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
    visibility_threshold: float = Field(default=0.5, ge=0.0, le=1.0, description=(
        "visible when the model's visibility probability exceeds this (only used when the model "
        "returns probabilities rather than bools)"))
    device: str = Field(default="cpu", description="torch device, e.g. cpu or cuda")


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


def _available() -> str | None:
    env = os.environ.get("COTRACKER_DIR")
    if env and not (Path(env).expanduser() / "cotracker" / "predictor.py").is_file():
        return f"COTRACKER_DIR={env} is not a CoTracker checkout (no cotracker/predictor.py); {INSTALL}"
    if not _library_present():
        return f"needs the CoTracker library (not installed): pip install 'dream2flow[cotracker]'; then {INSTALL}"
    return None


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
        if self.options.mode != "online":
            self.capabilities = frozenset(self.capabilities - {"online"})

    # ------------------------------------------------------------------ conversions
    def model_input(self, video: Video) -> Any:
        """The tensor CoTracker receives: float32 (1, T, 3, H, W), RGB, 0-255."""
        import torch

        check_video(video, "video")
        x = torch.from_numpy(np.array(video.frames, dtype=np.float32))  # T H W C, 0-255, a copy
        return x.permute(0, 3, 1, 2)[None].contiguous().to(self.options.device)

    def _queries(self, q: np.ndarray) -> Any:
        import torch

        return torch.from_numpy(np.ascontiguousarray(q, dtype=np.float32))[None].to(self.options.device)

    def _visibility(self, vis: Any, T: int, N: int) -> np.ndarray:
        v = vis.detach().cpu().numpy()
        if v.ndim == 4 and v.shape[-1] == 1:
            v = v[..., 0]
        v = v[0]
        if v.shape != (T, N):
            raise RuntimeError(f"CoTracker returned visibility of shape {tuple(vis.shape)}, expected (1, {T}, {N})")
        if v.dtype == np.bool_:
            return v
        return v > self.options.visibility_threshold

    # ------------------------------------------------------------------ tracking
    def _offline(self, x: Any, q: Any) -> tuple[Any, Any]:
        return self.predictor(x, queries=q, backward_tracking=self.options.backward_tracking)

    def _online(self, x: Any, q: Any) -> tuple[Any, Any]:
        import torch

        step = int(self.predictor.step)
        T = x.shape[1]
        if T <= step:  # the upstream loop needs more than one step of frames: repeat the last frame
            x = torch.cat([x, x[:, -1:].expand(-1, step + 1 - T, -1, -1, -1)], 1)
        self.predictor(video_chunk=x, is_first_step=True, queries=q, add_support_grid=True)
        tracks = vis = None
        for ind in range(0, x.shape[1] - step, step):
            tracks, vis = self.predictor(video_chunk=x[:, ind: ind + 2 * step])
        if tracks is None or tracks.shape[1] < T:
            got = None if tracks is None else tracks.shape[1]
            raise RuntimeError(f"online CoTracker returned tracks for {got} frames, the video has {T}")
        return tracks[:, :T], vis[:, :T]

    def track(self, video: Video, queries: np.ndarray) -> Tracks2D:
        import torch

        check_video(video, "video")
        q = check_queries(queries, video)
        T, N = video.num_frames, q.shape[0]
        t_q = q[:, 0].astype(np.int64)
        if N == 0:
            return Tracks2D(xy=np.zeros((T, 0, 2), np.float32), visible=np.zeros((T, 0), bool),
                            query_frame=t_q)
        x = self.model_input(video)
        with torch.no_grad():
            if self.options.mode == "online":
                tracks, vis = self._online(x, self._queries(q))
            else:
                tracks, vis = self._offline(x, self._queries(q))
        xy = tracks.detach().cpu().numpy()
        if xy.shape != (1, T, N, 2):
            raise RuntimeError(f"CoTracker returned tracks of shape {tuple(tracks.shape)}, expected (1, {T}, {N}, 2)")
        xy = np.array(xy[0], dtype=np.float32)
        visible = np.array(self._visibility(vis, T, N), dtype=bool)
        n = np.arange(N)
        xy[t_q, n] = q[:, 1:3]
        visible[t_q, n] = True
        if self.options.mode == "online":
            visible &= np.arange(T)[:, None] >= t_q[None, :]
        bad = ~np.isfinite(xy).all(-1)
        visible &= ~bad
        xy[bad] = np.nan
        return Tracks2D(xy=xy, visible=visible, query_frame=t_q)


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
    predictor = predictor.to(options.device)
    predictor.eval()
    return CoTracker3Tracker(predictor, options)


@hookimpl
def d2f_register(register):
    register(Manifest.of(CoTracker3Tracker, factory=_factory))
