"""``file`` depth estimator: per-frame depth read from a file (recorded, or precomputed offline).

Reads ``.npy``, ``.npz`` (array ``depth``, or the only array) or ``.pt`` (a tensor, array, or a
dict with ``depth``; needs torch) holding float T x H x W depth (a trailing or second singleton
channel axis, T x H x W x 1 or T x 1 x H x W, is accepted). Values are metres when
``metric: true``, else relative units; values are used as stored (convert millimetres to metres
before saving). Non-finite or <= 0 values are invalid and become 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from d2f_core import DataError, DepthVideo, Manifest, Video, hookimpl
from d2f_core.validate import check_video

__all__ = ["FileDepthOptions", "FileDepthEstimator", "read_depth"]


class FileDepthOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="depth file: .npy, .npz (array 'depth' or the only array) or .pt, "
                                  "float T x H x W, one map per video frame")
    metric: bool = Field(default=False, description="whether the values are metres along the camera "
                                                    "z axis (true) or relative units (false)")


def _array_from_mapping(data: Any, path: Path) -> Any:
    keys = list(data.keys())
    if "depth" in keys:
        return data["depth"]
    if len(keys) == 1:
        return data[keys[0]]
    raise DataError(f"{path}: holds {sorted(map(str, keys))}; name the depth array 'depth' "
                    "(np.savez(path, depth=...))")


def load_pt(path: Path) -> np.ndarray:
    try:
        import torch
    except ImportError:
        raise DataError(f"{path}: reading .pt files needs torch (not installed): pip install torch, or "
                        "convert the file to .npy (np.save(path, tensor.cpu().numpy()))") from None
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise DataError(f"{path}: torch.load failed ({type(e).__name__}: {e}); save the depth tensor "
                        "with torch.save(depth, path) or convert it to .npy") from None
    if isinstance(obj, dict):
        obj = _array_from_mapping(obj, path)
    if hasattr(obj, "detach"):
        obj = obj.detach().cpu().float().numpy()
    return np.asarray(obj)


def read_depth(path: str | Path) -> np.ndarray:
    """Read ``path`` -> float32 T x H x W (invalid values: non-finite or <= 0, set to 0)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"depth file not found: {p} (depth.options.path); give an existing .npy, .npz "
                        "or .pt file")
    from d2f_core.safeload import check_array_file
    check_array_file(p)  # a small .npz can expand to gigabytes: refused before reading
    suffix = p.suffix.lower()
    if suffix in (".npy", ".npz"):
        try:
            loaded = np.load(p, allow_pickle=False)
        except Exception as e:  # noqa: BLE001
            raise DataError(f"{p}: not a readable numpy file ({type(e).__name__}: {e})") from None
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded as z:
                arr = np.asarray(_array_from_mapping(z, p))
        else:
            arr = loaded
    elif suffix in (".pt", ".pth"):
        arr = load_pt(p)
    else:
        raise DataError(f"{p}: unsupported depth format {suffix!r}; use .npy, .npz or .pt")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise DataError(f"{p}: depth must be numbers, got dtype {arr.dtype}")
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    elif arr.ndim == 4 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 3:
        raise DataError(f"{p}: expected depth T x H x W (one map per frame), got shape {arr.shape}"
                        + ("; a single map needs a frame axis: np.save(path, depth[None])"
                           if arr.ndim == 2 else ""))
    out = arr.astype(np.float32)  # always a copy
    out[~np.isfinite(out) | (out <= 0)] = 0.0
    return out


class FileDepthEstimator:
    """Returns the file's depth for a video of the same T x H x W (no resizing, no alignment)."""

    name = "file"
    kind = "depth"
    capabilities = frozenset({"stand_in", "deterministic"})
    Options = FileDepthOptions
    description = "per-frame depth read from a .npy/.npz/.pt file (recorded or precomputed)"
    verified = "npy/npz round trips and shape checks in tests"

    def __init__(self, path: str | Path, metric: bool = False) -> None:
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise DataError(f"depth file not found: {self.path} (depth.options.path); give an existing "
                            ".npy, .npz or .pt file")
        self.metric = bool(metric)
        if self.metric:  # this instance returns metres: declare it, so conformance holds it to that
            self.capabilities = FileDepthEstimator.capabilities | {"metric_depth"}
        self._cache: np.ndarray | None = None

    def _load(self) -> np.ndarray:
        if self._cache is None:
            depth = read_depth(self.path)
            depth.flags.writeable = False
            self._cache = depth
        return self._cache

    def estimate(self, video: Video) -> DepthVideo:
        check_video(video, "video")
        depth = self._load()
        want = (video.num_frames, video.height, video.width)
        if depth.shape != want:
            raise ValueError(f"{self.path}: depth is T x H x W = {'x'.join(map(str, depth.shape))} but the "
                             f"video is {'x'.join(map(str, want))}; record depth for the same frames "
                             "and resolution as the video (same num_frames, width and height)")
        return DepthVideo(depth=np.array(depth), metric=self.metric, model=f"file:{self.path}")


def _factory(options: FileDepthOptions, ctx: Any = None) -> FileDepthEstimator:
    if options is None:
        raise DataError("depth.options.path: the 'file' depth estimator needs a path")
    return FileDepthEstimator(options.path, metric=options.metric)


@hookimpl
def d2f_register(register):
    register(Manifest.of(FileDepthEstimator, factory=_factory))
