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

Pipeline (the repository's ``inference.py``, RGB mode): frames -> ``preprocess_image`` (crop mode:
width ``img_size``, height a multiple of ``patch_size``, centre crop of tall videos to
``img_size`` rows) -> front end ``VGGT4Track`` on the frames
/ 255 (camera poses, intrinsics, a first depth and its confidence) -> ``Predictor.forward`` on the
**0-255 RGB** frames -> point map (T, 3, h, w) and its confidence. Depth is the point map's z
(camera frame); pixels whose confidence is below ``conf_threshold`` are invalid (0). The map is
put back into the video's frame (undoing the crop: cropped-off rows are invalid) and resized to
H x W. SpatialTrackerV2's depth has an unknown scale, so it is returned as relative depth
(``metric=False``); the core aligns it to the real first-frame depth.

Geometry: ``img_size`` and ``patch_size`` (518 and 14 in the release) are read from the front
end's own config, not hard-coded: the ``PyTorchModelHubMixin`` config of the loaded
``VGGT4Track`` (``config.json`` of ``front_weights``), else the defaults of its ``__init__``.
``preprocess_image`` is called with ``target_size=img_size`` (and ``patch_size`` when it takes
one), its output is checked against that geometry, and the crop is undone with it.

Devices (:mod:`d2f_core.devices`): ``device: auto`` = CUDA when available; ``dtype: auto`` runs the
forward passes under bfloat16 autocast on CUDA, as ``inference.py`` does (float16 on GPUs without
bf16), and float32 on the CPU.

Long videos: users report SpaTrackerV2 running out of memory on 12 GB GPUs; memory grows with the
frame count. ``chunk_frames`` estimates depth on chunks of that many frames overlapping by
``chunk_overlap`` frames. Each chunk's depth has its own unknown scale, so every chunk after the
first is scaled to the depth already stitched by the median ratio over the overlap's valid pixels
(SpaTrackerV2's depth is a reconstruction up to scale), and the overlap frames are cross-faded.

Conventions at this adapter's edge: the video's uint8 RGB frames are cast to float 0-255 and
transposed to (T, 3, H, W) (``model_input``; no channel swap: the model is trained on RGB, and a
cv2-style BGR frame would be wrong), see ``model_input_spec``.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from d2f_core import DataError, DepthVideo, Manifest, ModelInputSpec, Video, hookimpl
from d2f_core.devices import DEVICE_HELP, DTYPE_HELP, DTypeName, Needs, autocast, choose
from d2f_core.registry import PluginError, PluginUnavailableError
from d2f_core.validate import check_video
from d2f_plugins._checkout import add_to_path

__all__ = ["SpatialTrackerV2Options", "SpatialTrackerV2Depth", "back_to_video_frame", "front_geometry",
           "stitch_depth_chunks", "chunk_spans"]

log = logging.getLogger("d2f.plugins.spatialtracker_v2")

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
    device: str = Field(default="auto", description=DEVICE_HELP)
    dtype: DTypeName = Field(default="auto", description=DTYPE_HELP + "; auto = bfloat16 autocast on CUDA, "
                                                                      "as inference.py")
    chunk_frames: int | None = Field(default=None, ge=2, description=(
        "estimate long videos in chunks of this many frames (memory bounded by the chunk; e.g. 24 on a 12 GB "
        "GPU); None = the whole video at once"))
    chunk_overlap: int = Field(default=4, ge=1, description=(
        "frames shared by consecutive chunks: the next chunk's scale is fitted there and they are cross-faded"))

    needs: ClassVar[Needs] = Needs(
        weights=("weights", "front_weights"), cuda_dtype="bfloat16", gpu_gb=24.0, gpu_gb_min=10.0, disk_gb=5.0,
        source="https://huggingface.co/Yuxihenry/SpatialTrackerV2-Offline and "
               "https://huggingface.co/Yuxihenry/SpatialTrackerV2_Front",
        memory_options="chunk_frames (e.g. 24) with chunk_overlap")

    @model_validator(mode="after")
    def _overlap(self) -> "SpatialTrackerV2Options":
        if self.chunk_frames is not None and self.chunk_overlap >= self.chunk_frames:
            raise ValueError(f"chunk_overlap ({self.chunk_overlap}) must be smaller than chunk_frames "
                             f"({self.chunk_frames})")
        return self


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


def front_geometry(front: Any, front_cls: Any = None, front_weights: str | Path | None = None) -> tuple[int, int, str]:
    """(img_size, patch_size, where they came from) of SpaTrackerV2's front end: the loaded model's
    hub-mixin config, else ``config.json`` of its weights folder, else its class's ``__init__``
    defaults."""
    keys = ("img_size", "patch_size")
    for attr in ("_hub_mixin_config", "config"):
        cfg = getattr(front, attr, None)
        if isinstance(cfg, dict) and all(k in cfg for k in keys):
            return int(cfg["img_size"]), int(cfg["patch_size"]), f"the front end's config ({attr})"
    if front_weights is not None:
        f = Path(front_weights) / "config.json"
        try:
            cfg = json.loads(f.read_text()) if f.is_file() else None
        except (OSError, ValueError):
            cfg = None
        if isinstance(cfg, dict) and all(k in cfg for k in keys):
            return int(cfg["img_size"]), int(cfg["patch_size"]), str(f)
    for cls in (front_cls, type(front)):
        try:
            params = inspect.signature(cls.__init__).parameters if cls is not None else {}
        except (TypeError, ValueError):
            params = {}
        if all(k in params and isinstance(params[k].default, int) for k in keys):
            return (int(params["img_size"].default), int(params["patch_size"].default),
                    f"{getattr(cls, '__name__', cls)}.__init__ defaults")
    raise PluginError("depth plugin 'spatialtracker-v2': cannot tell the front end's input geometry (img_size, "
                      "patch_size): its config has neither and VGGT4Track.__init__ declares no defaults; check that "
                      "front_weights is a SpatialTrackerV2_Front download with its config.json")


def back_to_video_frame(depth: np.ndarray, valid: np.ndarray, H: int, W: int, *, patch: int = 14) -> np.ndarray:
    """Depth on the preprocessed frames (T, h, w) -> the video's (T, H, W); 0 = invalid.

    ``preprocess_image`` (crop mode) resized each frame to width w and height
    ``round(H * w / W / patch) * patch`` and kept the centre ``h`` rows of taller ones: the map is
    put back at its rows (the cropped-off rows are invalid) and resized with antialiasing; an
    output pixel is valid only when every input pixel it blends is.
    """
    import torch
    import torch.nn.functional as F

    T, h, w = depth.shape
    full_h = int(round(H * w / W / patch) * patch)
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


def chunk_spans(T: int, size: int | None, overlap: int) -> list[tuple[int, int]]:
    """[start, end) frame spans of at most ``size`` frames, consecutive ones sharing ``overlap``
    frames, covering 0..T (one span when ``size`` is None or >= T)."""
    if size is None or size >= T:
        return [(0, T)]
    spans, s = [], 0
    while True:
        e = min(T, s + size)
        spans.append((s, e))
        if e >= T:
            return spans
        s = e - overlap


def stitch_depth_chunks(chunks: list[np.ndarray], spans: list[tuple[int, int]],
                        T: int) -> tuple[np.ndarray, list[float]]:
    """Relative depth chunks (each (e - s, H, W), 0 = invalid) -> one (T, H, W) video at the first
    chunk's scale: each later chunk scaled by the median ratio stitched / chunk over the overlap's
    pixels valid in both, then cross-faded (linear weights) over the overlap. Returns the video and
    the scale given to each chunk."""
    H, W = chunks[0].shape[1:]
    out = np.zeros((T, H, W), np.float32)
    scales: list[float] = []
    for k, ((s, e), d) in enumerate(zip(spans, chunks)):
        d = np.asarray(d, np.float32)
        if k == 0:
            out[s:e] = d
            scales.append(1.0)
            continue
        prev_end = spans[k - 1][1]
        ov = prev_end - s
        a, b = out[s:prev_end], d[:ov]
        both = (a > 0) & (b > 0)
        if not both.any():
            raise DataError(f"depth plugin 'spatialtracker-v2': chunks {k - 1} and {k} share no valid depth in "
                            f"their {ov} overlapping frames, so their scales cannot be matched; raise chunk_overlap "
                            "or chunk_frames")
        scale = float(np.median(a[both] / b[both]))
        scales.append(scale)
        d = d * scale
        w = ((np.arange(ov) + 1.0) / (ov + 1.0))[:, None, None]  # weight of the new chunk
        blend = np.where(both, (1 - w) * a + w * d[:ov], np.where(a > 0, a, d[:ov]))
        out[s:prev_end] = blend
        out[prev_end:e] = d[ov:]
    return out, scales


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
                 options: SpatialTrackerV2Options | None = None,
                 geometry: tuple[int, int, str] | None = None) -> None:
        self.options = options or SpatialTrackerV2Options()
        self.predictor = predictor
        self.front = front
        self.preprocess = preprocess
        self.device = choose(self.options.device, self.options.dtype, component="depth spatialtracker-v2",
                             cuda_dtype=SpatialTrackerV2Options.needs.cuda_dtype)
        self.img_size, self.patch_size, self.geometry_source = geometry or front_geometry(front)
        try:
            params = inspect.signature(preprocess).parameters
        except (TypeError, ValueError):
            params = {}
        self._pre_kw: dict[str, Any] = {k: v for k, v in (("mode", "crop"), ("target_size", self.img_size),
                                                           ("patch_size", self.patch_size)) if k in params}
        self.last_chunks: list[tuple[int, int]] = []
        self.last_scales: list[float] = []

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

    def _preprocessed(self, x: Any, H: int, W: int) -> Any:
        out = self.preprocess(x, **self._pre_kw)                 # T 3 h w, still 0-255
        h, w = out.shape[-2:]
        full_h = int(round(H * w / W / self.patch_size) * self.patch_size)
        if w != self.img_size or h % self.patch_size or h != min(full_h, self.img_size):
            raise PluginError(f"depth plugin 'spatialtracker-v2': preprocess_image returned {w}x{h} frames for a "
                              f"{W}x{H} video, not the width {self.img_size} / multiple of {self.patch_size} of the "
                              f"front end's geometry ({self.geometry_source}); the checkout and the weights disagree")
        return out

    def _estimate_chunk(self, frames: Video) -> np.ndarray:
        """Depth (T, H, W) of one chunk (0 = invalid), at that run's own scale."""
        import torch

        T, H, W = frames.num_frames, frames.height, frames.width
        dev = self.device.device
        x = self._preprocessed(self.model_input(frames), H, W)
        with torch.no_grad(), autocast(self.device):
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
        return back_to_video_frame(z, valid, H, W, patch=self.patch_size)

    def estimate(self, video: Video) -> DepthVideo:
        check_video(video, "video")
        T = video.num_frames
        spans = chunk_spans(T, self.options.chunk_frames, self.options.chunk_overlap)
        chunks = [self._estimate_chunk(Video(frames=video.frames[s:e], fps=video.fps)) for s, e in spans]
        depth, scales = stitch_depth_chunks(chunks, spans, T) if len(spans) > 1 else (chunks[0], [1.0])
        self.last_chunks, self.last_scales = spans, scales
        model = "spatialtracker-v2" + (f" ({len(spans)} chunks of <= {self.options.chunk_frames} frames, "
                                       f"overlap {self.options.chunk_overlap})" if len(spans) > 1 else "")
        return DepthVideo(depth=depth, metric=False, model=model)


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
    geometry = front_geometry(front, VGGT4Track, front_weights)
    log.info("spatialtracker-v2: img_size %d, patch_size %d from %s", *geometry)
    model = Predictor.from_pretrained(weights)
    model.spatrack.track_num = options.vo_points
    model.eval()
    est = SpatialTrackerV2Depth(model, front, preprocess, options, geometry)
    est.front = front.to(est.device.device)
    model.to(est.device.device)  # the upstream Predictor.to returns None: keep our reference
    return est


@hookimpl
def d2f_register(register):
    register(Manifest.of(SpatialTrackerV2Depth, factory=_factory))
