"""Flow quality report: what the paper's failure analysis names, measured on every extraction.

* visibility: fraction of points visible per frame, points lost for good (never seen again);
* the object leaving the view (few points visible at the end, or tracks leaving the image);
* camera motion, estimated from background tracks (the video model must hold a still camera);
* rigidity spread of objects declared rigid (residual of a per-frame rigid fit, metres).

Thresholds are options with defaults; each exceeded one adds a line to ``warnings``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..types import ObjectFlow, Tracks2D


@dataclass(frozen=True)
class QualityThresholds:
    camera_motion_px: float = 2.0
    """Median background displacement from frame 0 above which the camera is said to move (px)."""
    min_final_visible: float = 0.5
    """Fraction of points visible in the last frame below which the object 'left the view'."""
    max_lost_fraction: float = 0.3
    """Fraction of points lost for good above which tracking is flagged."""
    rigidity_m: float = 0.02
    """Rigid-fit RMS residual above which a rigid object's flow is flagged (metres)."""


def kabsch(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation R and translation t minimising sum ||R a_i + t - b_i||^2 (a, b: N x 3)."""
    ca, cb = a.mean(0), b.mean(0)
    H = (a - ca).T @ (b - cb)
    U, _, Vt = np.linalg.svd(H)
    d = np.sign(np.linalg.det(Vt.T @ U.T))
    D = np.diag([1.0, 1.0, d])
    R = Vt.T @ D @ U.T
    return R, cb - R @ ca


def lost_for_good(visible: np.ndarray) -> np.ndarray:
    """Per point: the frame from which it is never visible again (-1 if visible in the last frame
    or never visible at all)."""
    T = visible.shape[0]
    ever_after = np.flip(np.logical_or.accumulate(np.flip(visible, 0), 0), 0)  # visible at t or later
    seen = visible.any(0)
    lost = np.where(seen & ~visible[-1], np.argmin(ever_after, axis=0), -1)
    return np.where(lost >= T, -1, lost)


def camera_motion(background: Tracks2D | None) -> dict[str, Any] | None:
    """Median displacement (px) of background tracks from their frame-0 position, per frame."""
    if background is None or background.num_points == 0:
        return None
    xy = background.xy.astype(np.float64)
    vis = background.visible & background.visible[:1]
    disp = np.linalg.norm(xy - xy[:1], axis=-1)
    per_frame = [float(np.median(disp[t][vis[t]])) if vis[t].sum() >= 5 else None for t in range(len(xy))]
    vals = [v for v in per_frame if v is not None]
    return {"median_px_per_frame": per_frame, "max_px": max(vals) if vals else None,
            "num_tracks": int(background.num_points)}


def rigidity(flow: ObjectFlow) -> dict[str, Any]:
    """RMS residual (m) of the best rigid motion from frame 0 to each frame (points visible in both)."""
    p0 = flow.points[0].astype(np.float64)
    res: list[float | None] = []
    for t in range(flow.num_frames):
        both = flow.visible[0] & flow.visible[t]
        if both.sum() < 4:
            res.append(None)
            continue
        R, tr = kabsch(p0[both], flow.points[t][both].astype(np.float64))
        r = (p0[both] @ R.T + tr) - flow.points[t][both]
        res.append(float(np.sqrt(np.mean(np.sum(r ** 2, axis=1)))))
    vals = [v for v in res if v is not None]
    return {"rms_m_per_frame": res, "max_m": max(vals) if vals else None,
            "mean_m": float(np.mean(vals)) if vals else None}


def quality_report(flow: ObjectFlow, tracks: Tracks2D, *, background: Tracks2D | None = None,
                   rigid: bool = True, image_size: tuple[int, int] | None = None,
                   thresholds: QualityThresholds = QualityThresholds(),
                   extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The report as a JSON-ready dict (see the module doc). ``image_size`` is (width, height)."""
    th = thresholds
    vis = flow.visible
    T, N = vis.shape
    frac = vis.mean(1) if N else np.zeros(T)
    lost = lost_for_good(vis)
    n_lost = int((lost >= 0).sum())
    warnings: list[str] = []
    report: dict[str, Any] = {
        "num_frames": T, "num_points": N,
        "visible_fraction_per_frame": [round(float(f), 4) for f in frac],
        "visible_fraction_min": float(frac.min()) if T else 0.0,
        "visible_fraction_final": float(frac[-1]) if T else 0.0,
        "lost_for_good": n_lost, "lost_fraction": n_lost / max(N, 1),
        "lost_at_frame_histogram": np.bincount(lost[lost >= 0], minlength=T).tolist() if n_lost else [0] * T,
    }
    if image_size is not None:
        w, h = image_size
        xy = tracks.xy
        outside = (xy[..., 0] < 0) | (xy[..., 1] < 0) | (xy[..., 0] > w - 1) | (xy[..., 1] > h - 1)
        report["outside_image_fraction_final"] = float(outside[-1].mean()) if N else 0.0
    left = report["visible_fraction_final"] < th.min_final_visible
    report["object_left_view"] = bool(left)
    if left:
        warnings.append(f"object left the view or was lost: only {report['visible_fraction_final']:.0%} of "
                        f"the points are visible in the last frame (threshold {th.min_final_visible:.0%})")
    if report["lost_fraction"] > th.max_lost_fraction:
        warnings.append(f"{report['lost_fraction']:.0%} of the points are lost for good "
                        f"(threshold {th.max_lost_fraction:.0%}): occlusion or tracking failure")
    cam = camera_motion(background)
    report["camera_motion"] = cam
    moving_cam = bool(cam is not None and cam["max_px"] is not None and cam["max_px"] > th.camera_motion_px)
    report["camera_moving"] = moving_cam
    if moving_cam:
        warnings.append(f"the camera moves in the video: background drifts {cam['max_px']:.1f} px "
                        f"(threshold {th.camera_motion_px} px); the video model must hold a still camera")
    if rigid:
        rig = rigidity(flow)
        report["rigidity"] = rig
        if rig["max_m"] is not None and rig["max_m"] > th.rigidity_m:
            warnings.append(f"a rigid object's flow deforms: rigid-fit residual up to {rig['max_m'] * 100:.1f} cm "
                            f"(threshold {th.rigidity_m * 100:.1f} cm): depth or tracking errors")
    report["thresholds"] = {k: getattr(th, k) for k in th.__dataclass_fields__}
    if extra:
        report.update(extra)
    report["warnings"] = warnings
    return report
