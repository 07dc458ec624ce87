"""Grasp choice (paper §4.5): near the thumb of the hand in the video, else near the moving part.

With hand keypoints, the thumb tip is lifted to 3D with the aligned depth of its frame; going
through the frames in order, the first frame where some candidate lies within ``radius`` (2 cm)
of the thumb picks the candidate closest to it. Without a hand (or none close enough), the
candidate closest to the movable part's points (flow points that move) is chosen.
"""

from __future__ import annotations

import numpy as np

from .flow.lifting import bilinear
from .types import Camera, Grasp, HandTrack, ObjectFlow


def movable_points(flow: ObjectFlow, min_motion_m: float = 0.01) -> np.ndarray:
    """First-frame positions (M, 3) of flow points whose visible displacement exceeds min_motion_m."""
    first = flow.points[0]
    disp = np.zeros(flow.num_points)
    for t in range(1, flow.num_frames):
        both = flow.visible[t] & flow.visible[0]
        d = np.linalg.norm(flow.points[t] - first, axis=1)
        disp = np.where(both, np.maximum(disp, d), disp)
    moving = disp > min_motion_m
    keep = flow.visible[0] & (moving if moving.any() else True)
    return first[keep]


def choose_grasp(candidates: list[Grasp], flow: ObjectFlow, *, hands: HandTrack | None = None,
                 depth: np.ndarray | None = None, camera: Camera | None = None,
                 radius: float = 0.02) -> tuple[int, str]:
    """Index of the chosen candidate and a sentence saying why."""
    if not candidates:
        raise ValueError("candidates: no grasp candidates to choose from")
    pos = np.stack([g.position for g in candidates])
    if hands is not None and depth is not None and camera is not None and hands.present.any():
        thumb = hands.thumb_tip.astype(np.float64)
        for t in np.nonzero(hands.present)[0]:
            if t >= depth.shape[0]:
                break
            z, ok = bilinear(depth[t], thumb[t:t + 1])
            if not ok[0]:
                continue
            p = camera.backproject(thumb[t], z[0])
            d = np.linalg.norm(pos - p, axis=1)
            if d.min() <= radius:
                i = int(np.argmin(d))
                return i, f"thumb at frame {int(t)} is {d[i] * 100:.1f} cm from candidate {i}"
    pts = movable_points(flow)
    if len(pts) == 0:
        return 0, "no visible flow points: took the best-scored candidate"
    d = np.min(np.linalg.norm(pos[:, None, :] - pts[None], axis=2), axis=1)
    i = int(np.argmin(d))
    why = "no hand near a candidate" if hands is not None and hands.present.any() else "no hand detected"
    return i, f"{why}: candidate {i} is closest to the movable part ({d[i] * 100:.1f} cm)"
