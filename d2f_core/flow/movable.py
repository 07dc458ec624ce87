"""Movable-part filter (paper §4.5): keep the part of the object that moves in the video.

Tracks whose mean motion exceeds ``threshold_px`` pixels per frame are the movable part (an oven
door), the others are static (the oven's body). Where the Segmenter accepts point prompts, it is
re-prompted with positive (moving) and negative (static) points to get the movable part's mask,
and points are resampled there; otherwise the static tracks are dropped.
"""

from __future__ import annotations

import numpy as np

from ..types import Tracks2D
from .sampling import farthest_point_sampling


def mean_motion(tracks: Tracks2D) -> np.ndarray:
    """Mean displacement (pixels per frame) of each track over consecutive frames where it is
    visible in both; NaN for a track never visible in two consecutive frames."""
    xy = tracks.xy.astype(np.float64)
    both = tracks.visible[1:] & tracks.visible[:-1]
    step = np.linalg.norm(xy[1:] - xy[:-1], axis=-1)
    n = both.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (step * both).sum(0) / np.maximum(n, 1), np.nan)


def split_movable(tracks: Tracks2D, threshold_px: float = 1.0, min_pairs: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """(moving, static) bool masks over tracks.

    Motion is evidence on its own: a track moving more than ``threshold_px`` per frame over the
    frames it was seen in (at least 2 consecutive) is moving. Stillness needs a long look: a track is
    static only when seen in at least ``min_pairs`` of the consecutive frame pairs, since a track lost
    early (in the slow start of a motion, or as a door turns away) says little. The rest are neither.
    """
    m = mean_motion(tracks)
    pairs = (tracks.visible[1:] & tracks.visible[:-1]).sum(0)
    need = min(max(2, int(np.ceil(min_pairs * (tracks.num_frames - 1)))), tracks.num_frames - 1)
    moving = np.isfinite(m) & (pairs >= min(2, tracks.num_frames - 1)) & (m > threshold_px)
    static = np.isfinite(m) & (pairs >= need) & ~moving
    return moving, static


def prompt_points(xy: np.ndarray, moving: np.ndarray, static: np.ndarray, per_label: int = 8,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``per_label`` positive (moving) and negative (static) prompt points, spread out by
    farthest-point sampling in the image. Returns (points K x 2 pixels, labels K of 1/0)."""
    pts, labels = [], []
    for sel, lab in ((moving, 1), (static, 0)):
        cand = np.asarray(xy, dtype=np.float64)[sel]
        if len(cand):
            idx = farthest_point_sampling(cand, per_label, seed)
            pts.append(cand[idx])
            labels.append(np.full(len(idx), lab, np.int64))
    if not pts:
        return np.zeros((0, 2)), np.zeros(0, np.int64)
    return np.concatenate(pts).astype(np.float32), np.concatenate(labels)
