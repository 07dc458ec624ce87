"""Object points to track: erode the mask, keep valid depth, farthest-point sample in 3D."""

from __future__ import annotations

import numpy as np

from ..types import RGBD, DataError


def erode(mask: np.ndarray, px: int) -> np.ndarray:
    """Binary erosion by a (2 px + 1) square (pure numpy)."""
    m = np.asarray(mask, dtype=bool)
    if px <= 0:
        return m.copy()
    H, W = m.shape
    p = np.pad(m, px, constant_values=False)
    out = np.ones_like(m)
    for dy in range(2 * px + 1):
        for dx in range(2 * px + 1):
            out &= p[dy:dy + H, dx:dx + W]
    return out


def farthest_point_sampling(points: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Indices of up to ``n`` points chosen by farthest-point sampling (start: seeded random)."""
    pts = np.asarray(points, dtype=np.float64)
    m = pts.shape[0]
    if m <= n:
        return np.arange(m)
    rng = np.random.default_rng(seed)
    idx = np.empty(n, np.int64)
    idx[0] = rng.integers(m)
    # per coordinate, in place: the same sums in the same order as summing (pts - p) ** 2 over axis 1
    cols = np.ascontiguousarray(pts.T)
    dist = np.empty(m)
    tmp = np.empty(m)

    def sq_dist(j: int, out: np.ndarray) -> np.ndarray:
        np.subtract(cols[0], cols[0, j], out=out)
        np.multiply(out, out, out=out)
        for c in cols[1:]:
            np.subtract(c, c[j], out=tmp)
            np.multiply(tmp, tmp, out=tmp)
            out += tmp
        return out

    sq_dist(idx[0], dist)
    d = np.empty(m)
    for i in range(1, n):
        idx[i] = int(np.argmax(dist))
        np.minimum(dist, sq_dist(idx[i], d), out=dist)
    return idx


def sample_object_points(rgbd: RGBD, mask: np.ndarray, n: int, *, erode_px: int = 2,
                         seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Query pixels (n, 3) as (t=0, x, y) float32 and their 3D world points (n, 3).

    Erodes the mask by ``erode_px`` (falls back to the raw mask when erosion empties it),
    intersects with valid depth, and farthest-point samples in 3D.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != rgbd.depth.shape:
        raise DataError(f"mask: shape {mask.shape} differs from the image {rgbd.depth.shape}")
    if not mask.any():
        raise DataError("mask: the object mask is empty; check the segmenter's text prompt or mask.png")
    m = erode(mask, erode_px)
    keep = m & rgbd.valid
    if not keep.any():
        keep = mask & rgbd.valid
    if not keep.any():
        raise DataError("mask: no pixel inside the object mask has valid depth; check initial_depth")
    ys, xs = np.nonzero(keep)
    xy = np.stack([xs, ys], -1).astype(np.float64)
    pts = rgbd.camera.backproject(xy, rgbd.depth[ys, xs])
    idx = farthest_point_sampling(pts, n, seed)
    queries = np.concatenate([np.zeros((len(idx), 1)), xy[idx]], 1).astype(np.float32)
    return queries, pts[idx]
