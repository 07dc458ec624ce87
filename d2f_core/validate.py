"""Input checks shared by components: each raises ValueError naming the argument and the fix."""

from __future__ import annotations

from typing import Any

import numpy as np

from .types import DataError, Video, check_rgb_frames


def check_video(video: Any, name: str = "video") -> Video:
    if not isinstance(video, Video):
        raise DataError(f"{name}: expected d2f_core.Video (uint8 T x H x W x 3 RGB), got "
                        f"{type(video).__name__}; wrap frames with Video(frames=...)")
    return video


def check_image(image: Any, name: str = "image") -> np.ndarray:
    """uint8 H x W x 3 RGB."""
    return check_rgb_frames(name, image, 3)


def check_queries(queries: Any, video: Video, name: str = "queries") -> np.ndarray:
    """float N x 3 (t, x, y) with t a frame index of ``video`` and (x, y) inside the image."""
    if not isinstance(queries, np.ndarray):
        raise DataError(f"{name}: expected a numpy array N x 3 of (t, x, y), got {type(queries).__name__}")
    if queries.ndim != 2 or queries.shape[1] != 3:
        raise DataError(f"{name}: expected N x 3 rows of (t, x, y), got shape {queries.shape}"
                        + ("; (x, y) pairs need a frame index column first" if queries.ndim == 2
                           and queries.shape[1] == 2 else ""))
    q = queries.astype(np.float32)
    if q.shape[0] and not np.all(np.isfinite(q)):
        raise DataError(f"{name}: contains NaN or inf")
    t = q[:, 0]
    if np.any(t != np.round(t)) or np.any(t < 0) or np.any(t >= video.num_frames):
        raise DataError(f"{name}: column 0 is the frame index and must be an integer in "
                        f"[0, {video.num_frames - 1}]")
    x, y = q[:, 1], q[:, 2]
    if np.any(x < -0.5) or np.any(x > video.width - 0.5) or np.any(y < -0.5) or np.any(y > video.height - 0.5):
        raise DataError(f"{name}: (x, y) must lie inside the {video.width}x{video.height} image "
                        "(x = column, y = row, pixels)")
    return q


def check_mask(mask: Any, shape: tuple[int, int], name: str = "mask") -> np.ndarray:
    if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_:
        raise DataError(f"{name}: expected a bool H x W numpy array, got "
                        f"{getattr(mask, 'dtype', type(mask).__name__)}; use mask.astype(bool)")
    if mask.shape != tuple(shape):
        raise DataError(f"{name}: shape {mask.shape} differs from the image {tuple(shape)}")
    return mask


def check_points(points: Any, name: str = "points") -> np.ndarray:
    """float N x 3 metres."""
    if not isinstance(points, np.ndarray) or points.ndim != 2 or points.shape[1] != 3:
        raise DataError(f"{name}: expected a float N x 3 array of metres, got "
                        f"{getattr(points, 'shape', type(points).__name__)}")
    if not np.issubdtype(points.dtype, np.floating):
        raise DataError(f"{name}: expected floats (metres), got dtype {points.dtype}")
    if not np.all(np.isfinite(points)):
        raise DataError(f"{name}: contains NaN or inf")
    return points
