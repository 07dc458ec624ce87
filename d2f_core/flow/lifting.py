"""Lift 2D tracks to 3D object flow with metric depth and the calibrated camera (paper §4.2)."""

from __future__ import annotations

import numpy as np

from ..types import Camera, DataError, ObjectFlow, Tracks2D


def bilinear(depth: np.ndarray, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sample ``depth`` (H x W) at float pixels ``xy`` (N x 2); returns (values, ok).

    ``ok`` is False outside the image or where any of the 4 neighbours is invalid (<= 0/NaN).
    """
    H, W = depth.shape
    x, y = xy[:, 0], xy[:, 1]
    inside = np.isfinite(x) & np.isfinite(y) & (x >= 0) & (y >= 0) & (x <= W - 1) & (y <= H - 1)
    xc = np.clip(np.nan_to_num(x), 0, W - 1)
    yc = np.clip(np.nan_to_num(y), 0, H - 1)
    x0 = np.clip(np.floor(xc).astype(int), 0, max(W - 2, 0))
    y0 = np.clip(np.floor(yc).astype(int), 0, max(H - 2, 0))
    fx, fy = xc - x0, yc - y0
    d00, d01 = depth[y0, x0], depth[y0, x0 + 1]
    d10, d11 = depth[y0 + 1, x0], depth[y0 + 1, x0 + 1]
    nb = np.stack([d00, d01, d10, d11])
    ok = inside & np.all(np.isfinite(nb) & (nb > 0), axis=0)
    val = (d00 * (1 - fx) * (1 - fy) + d01 * fx * (1 - fy) + d10 * (1 - fx) * fy + d11 * fx * fy)
    return np.where(ok, val, 0.0), ok


def lift_tracks(tracks: Tracks2D, depth: np.ndarray, camera: Camera, *,
                colors: np.ndarray | None = None, fps: float = 8.0,
                max_relative_jump: float = 0.05, provenance: dict | None = None) -> ObjectFlow:
    """3D flow from tracks and metric depth (T x H x W float32, metres, the camera's image size).

    A point is visible where the tracker says so, the depth is valid around it, it is inside the
    image, and it is not on a depth discontinuity (neighbours differing by more than
    ``max_relative_jump`` of the depth).
    """
    depth = np.asarray(depth)
    if depth.ndim != 3 or depth.shape[0] != tracks.num_frames:
        raise DataError(f"depth: expected {tracks.num_frames} x H x W, got {depth.shape}")
    if depth.shape[1:] != (camera.height, camera.width):
        raise DataError(f"depth: frames are {depth.shape[2]}x{depth.shape[1]} but the camera is "
                        f"{camera.width}x{camera.height}; resize the video to the camera image first")
    T, N = tracks.num_frames, tracks.num_points
    points = np.zeros((T, N, 3), np.float32)
    visible = np.zeros((T, N), bool)
    for t in range(T):
        xy = tracks.xy[t].astype(np.float64)
        z, ok = bilinear(depth[t], xy)
        ok &= tracks.visible[t]
        if max_relative_jump is not None and ok.any():
            H, W = depth.shape[1:]
            xi = np.clip(np.round(np.nan_to_num(xy[:, 0])).astype(int), 1, W - 2)
            yi = np.clip(np.round(np.nan_to_num(xy[:, 1])).astype(int), 1, H - 2)
            nb = np.stack([depth[t, yi + dy, xi + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)])
            spread = nb.max(0) - np.where(nb > 0, nb, np.inf).min(0)
            ok &= spread <= max_relative_jump * np.maximum(z, 1e-6)
        p = camera.backproject(np.nan_to_num(xy), z)
        points[t] = np.where(ok[:, None], p, 0.0)
        visible[t] = ok
    return ObjectFlow(points=points, visible=visible, colors=colors, fps=fps, provenance=provenance or {})
