"""``spatialtracker-v2`` depth estimator: video depth from SpatialTrackerV2 (SpaTrackerV2).

Install (SpaTrackerV2 is not on PyPI and has no installer; its code is the package ``models`` at
the root of its repository)::

    pip install 'dream2flow[spatialtracker]'
    git clone https://github.com/henry123-boy/SpaTrackerV2
    pip install -r SpaTrackerV2/requirements.txt
    export SPATRACKERV2_DIR=$PWD/SpaTrackerV2      # or put the checkout on PYTHONPATH

Weights (local, never downloaded): ``depth.options.weights`` = a local copy of
https://huggingface.co/Yuxihenry/SpatialTrackerV2-Offline (folder, or the checkpoint file for
older checkouts) and ``depth.options.front_weights`` = a local copy of
https://huggingface.co/Yuxihenry/SpatialTrackerV2_Front (e.g. ``huggingface-cli download
Yuxihenry/SpatialTrackerV2_Front --local-dir DIR``).

Pipeline (the repository's ``inference.py``, RGB mode): frames -> ``preprocess_image`` (width 518,
height a multiple of 14, centre crop of tall videos) -> front end ``VGGT4Track`` on the frames
/ 255 (camera poses, intrinsics, a first depth and its confidence) -> ``Predictor.forward`` on the
**0-255 RGB** frames -> point map (T, 3, h, w) and its confidence. Depth is the point map's z
(camera frame); pixels whose confidence is below ``conf_threshold`` are invalid (0). The map is
put back into the video's frame (undoing the crop: cropped-off rows are invalid) and resized to
H x W. SpatialTrackerV2's depth has an unknown scale, so it is returned as relative depth
(``metric=False``); the core aligns it to the real first-frame depth.

Conventions at this adapter's edge: the video's uint8 RGB frames are cast to float 0-255 and
transposed to (T, 3, H, W) (``model_input``; no channel swap: the model is trained on RGB, and a
cv2-style BGR frame would be wrong), see ``model_input_spec``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from d2f_core import DataError, DepthVideo, Manifest, ModelInputSpec, Video, hookimpl
from d2f_core.registry import PluginUnavailableError
from d2f_core.validate import check_video
from d2f_plugins._checkout import add_to_path

__all__ = ["SpatialTrackerV2Options", "SpatialTrackerV2Depth", "back_to_video_frame"]

UPSTREAM = "https://github.com/henry123-boy/SpaTrackerV2"
INSTALL = (f"git clone {UPSTREAM}, pip install -r SpaTrackerV2/requirements.txt, then "
           "export SPATRACKERV2_DIR=/path/to/SpaTrackerV2")
PREDICTOR = "models.SpaTrackV2.models.predictor"
FRONT = "models.SpaTrackV2.models.vggt4track.models.vggt_moe"
PREPROCESS = "models.SpaTrackV2.models.vggt4track.utils.load_fn"
WEIGHTS_HELP = ("set depth.options.weights to a local copy of huggingface.co/Yuxihenry/SpatialTrackerV2-Offline "
                "and depth.options.front_weights to a local copy of huggingface.co/Yuxihenry/SpatialTrackerV2_Front "
                "(huggingface-cli download REPO --local-dir DIR); nothing is downloaded")


class SpatialTrackerV2Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    weights: str | None = Field(default=None, description=(
        "local SpatialTrackerV2-Offline weights (folder from the Hugging Face hub, or checkpoint file) "
        "for Predictor.from_pretrained"))
    front_weights: str | None = Field(default=None, description=(
        "local SpatialTrackerV2_Front folder for VGGT4Track.from_pretrained (camera, first depth)"))
    conf_threshold: float = Field(default=0.5, ge=0.0, le=1.0, description=(
        "pixels whose point-map confidence (conf_depth) is below this are invalid (depth 0)"))
    front_conf_threshold: float = Field(default=0.5, ge=0.0, le=1.0, description=(
        "the front end's depth confidence above which its depth is trusted (unc_metric), as the "
        "upstream inference.py"))
    vo_points: int = Field(default=756, ge=1, description="points the tracker uses for camera tracking (track_num)")
    grid_size: int = Field(default=10, ge=1, description="queries: grid_size x grid_size points on frame 0")
    device: str = Field(default="cpu", description="torch device, e.g. cpu or cuda")


def _checkout() -> Path | None:
    env = os.environ.get("SPATRACKERV2_DIR")
    if env and (Path(env).expanduser() / "models" / "SpaTrackV2" / "models" / "predictor.py").is_file():
        return Path(env).expanduser()
    return None


def _importable() -> bool:
    if PREDICTOR in sys.modules:
        return True
    try:
        return importlib.util.find_spec(PREDICTOR) is not None
    except (ImportError, ValueError):
        return False


def _available() -> str | None:
    if os.environ.get("SPATRACKERV2_DIR") and _checkout() is None:
        return (f"SPATRACKERV2_DIR={os.environ['SPATRACKERV2_DIR']} is not a SpaTrackerV2 checkout (no "
                f"models/SpaTrackV2/models/predictor.py); {INSTALL}")
    if _checkout() is None and not _importable():
        return f"needs SpaTrackerV2 (not installed): pip install 'dream2flow[spatialtracker]'; then {INSTALL}"
    return None


def _import_upstream() -> tuple[Any, Any, Any]:
    root = _checkout()
    if root is not None:
        add_to_path(root)
    loaded = sys.modules.get("models")
    if loaded is not None and root is not None:
        where = Path(getattr(loaded, "__file__", "") or "").resolve()
        if not str(where).startswith(str(root.resolve())):
            raise PluginUnavailableError(
                f"depth plugin 'spatialtracker-v2': a different top-level module 'models' is already imported "
                f"(from {where}); SpaTrackerV2's code is the package 'models' of {root}: import nothing else "
                "called 'models' before building it")
    try:
        return (importlib.import_module(PREDICTOR).Predictor, importlib.import_module(FRONT).VGGT4Track,
                importlib.import_module(PREPROCESS).preprocess_image)
    except ImportError as e:
        raise PluginUnavailableError(f"depth plugin 'spatialtracker-v2' cannot import SpaTrackerV2 ({e}); "
                                     f"{INSTALL}") from None


def back_to_video_frame(depth: np.ndarray, valid: np.ndarray, H: int, W: int) -> np.ndarray:
    """Depth on the preprocessed frames (T, h, w) -> the video's (T, H, W); 0 = invalid.

    ``preprocess_image`` (crop mode) resized each frame to width w and height
    ``round(H * w / W / 14) * 14`` and kept the centre ``h`` rows of taller ones: the map is put
    back at its rows (the cropped-off rows are invalid) and resized with antialiasing; an output
    pixel is valid only when every input pixel it blends is.
    """
    import torch
    import torch.nn.functional as F

    T, h, w = depth.shape
    full_h = int(round(H * w / W / 14.0) * 14)
    d = np.where(valid, depth, 0.0).astype(np.float32)
    v = valid.astype(np.float32)
    if full_h > h:
        top = (full_h - h) // 2
        d = np.pad(d, ((0, 0), (top, full_h - h - top), (0, 0)))
        v = np.pad(v, ((0, 0), (top, full_h - h - top), (0, 0)))
    dt = torch.from_numpy(d)[:, None]
    vt = torch.from_numpy(v)[:, None]
    down = dt.shape[-2] > H or dt.shape[-1] > W
    num = F.interpolate(dt, size=(H, W), mode="bilinear", align_corners=False, antialias=down)[:, 0]
    den = F.interpolate(vt, size=(H, W), mode="bilinear", align_corners=False, antialias=down)[:, 0]
    ok = den > 0.999
    out = torch.where(ok, num / den.clamp_min(1e-6), torch.zeros_like(num))
    return out.numpy().astype(np.float32)


class SpatialTrackerV2Depth:
    """Relative video depth from SpatialTrackerV2 (see the module docstring)."""

    name = "spatialtracker-v2"
    kind = "depth"
    capabilities = frozenset({"needs_weights", "deterministic", "model_input"})
    Options = SpatialTrackerV2Options
    extra, requires, install = "spatialtracker", ("torch",), INSTALL
    available = staticmethod(_available)
    description = "SpatialTrackerV2 video depth (point-map z, low confidence invalid), relative"
    verified = ("stand-in of the documented SpaTrackerV2 inference API (tests/standins/spatrackerv2): "
                "depth checks, known depth per colour, RGB 0-255 input, crop undone")
    model_input_spec = ModelInputSpec(channel_order="RGB", value_range=(0.0, 255.0), layout="TCHW")

    def __init__(self, predictor: Any, front: Any, preprocess: Any,
                 options: SpatialTrackerV2Options | None = None) -> None:
        self.options = options or SpatialTrackerV2Options()
        self.predictor = predictor
        self.front = front
        self.preprocess = preprocess

    def model_input(self, video: Video) -> Any:
        """What SpaTrackerV2 receives: float32 (T, 3, H, W), RGB, 0-255 (before its own resizing)."""
        import torch

        check_video(video, "video")
        x = torch.from_numpy(np.array(video.frames, dtype=np.float32))  # T H W C, a copy
        return x.permute(0, 3, 1, 2).contiguous()

    def _queries(self, h: int, w: int) -> np.ndarray:
        n = self.options.grid_size
        mx, my = w / (2.0 * n), h / (2.0 * n)
        xs = np.linspace(mx, w - 1 - mx, n)
        ys = np.linspace(my, h - 1 - my, n)
        gx, gy = np.meshgrid(xs, ys)
        return np.stack([np.zeros(gx.size), gx.ravel(), gy.ravel()], -1).astype(np.float32)

    def estimate(self, video: Video) -> DepthVideo:
        import torch

        check_video(video, "video")
        T, H, W = video.num_frames, video.height, video.width
        dev = self.options.device
        x = self.preprocess(self.model_input(video))             # T 3 h w, still 0-255
        cuda = str(dev).startswith("cuda")                       # inference.py runs in bfloat16 on the GPU
        with torch.no_grad(), torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=cuda):
            pred = self.front((x[None] / 255.0).to(dev))         # the front end takes 0-1
            extrs = pred["poses_pred"][0].detach().float().cpu().numpy()
            intrs = pred["intrs"][0].detach().float().cpu().numpy()
            depth0 = pred["points_map"][0, ..., 2].detach().float().cpu().numpy()
            unc = pred["unc_metric"][0].detach().float().cpu().numpy() > self.options.front_conf_threshold
            h, w = x.shape[-2:]
            out = self.predictor.forward(
                x.to(dev), depth=depth0, intrs=intrs, extrs=extrs, queries=self._queries(h, w), fps=1,
                full_point=False, iters_track=4, query_no_BA=True, fixed_cam=False, stage=1, unc_metric=unc,
                support_frame=T - 1, replace_ratio=0.2)
        point_map, conf = out[2], out[3]
        pm = point_map.detach().float().cpu().numpy() if hasattr(point_map, "detach") else np.asarray(point_map)
        cf = conf.detach().float().cpu().numpy() if hasattr(conf, "detach") else np.asarray(conf)
        if pm.ndim != 4 or pm.shape[0] < T or pm.shape[1] != 3:
            raise RuntimeError(f"SpaTrackerV2 returned a point map of shape {pm.shape}, expected (T={T}, 3, h, w)")
        z, cf = pm[:T, 2], cf[:T]
        valid = np.isfinite(z) & (z > 0) & (cf >= self.options.conf_threshold)
        depth = back_to_video_frame(z, valid, H, W)
        return DepthVideo(depth=depth, metric=False, model="spatialtracker-v2")


def _local(path: str | None, field: str) -> str:
    if not path:
        raise PluginUnavailableError(f"depth plugin 'spatialtracker-v2' needs weights: {WEIGHTS_HELP}")
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"depth.options.{field}: {p} not found; {WEIGHTS_HELP}")
    return str(p)


def _factory(options: SpatialTrackerV2Options | None, ctx: Any = None) -> SpatialTrackerV2Depth:
    options = options or SpatialTrackerV2Options()
    try:
        import torch  # noqa: F401
    except ImportError:
        raise PluginUnavailableError("depth plugin 'spatialtracker-v2' needs torch (not installed): "
                                     "pip install 'dream2flow[spatialtracker]'") from None
    weights = _local(options.weights, "weights")
    front_weights = _local(options.front_weights, "front_weights")
    Predictor, VGGT4Track, preprocess = _import_upstream()
    front = VGGT4Track.from_pretrained(front_weights)
    front.eval()
    front = front.to(options.device)
    model = Predictor.from_pretrained(weights)
    model.spatrack.track_num = options.vo_points
    model.eval()
    model.to(options.device)  # the upstream Predictor.to returns None: keep our reference
    return SpatialTrackerV2Depth(model, front, preprocess, options)


@hookimpl
def d2f_register(register):
    register(Manifest.of(SpatialTrackerV2Depth, factory=_factory))
