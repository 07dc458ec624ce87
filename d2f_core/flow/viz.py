"""Pictures of a flow: tracks drawn over the video, a 3D plot, and an optional Rerun recording.

Drawing is pure numpy; writing mp4/PNG needs the ``io``/``viz`` extras (imageio, matplotlib) and
Rerun the ``viz`` extra (rerun-sdk). Each writer returns the path it wrote, or None with the
reason when its library is missing — pictures never fail a run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..types import ObjectFlow, Tracks2D


def _palette(n: int) -> np.ndarray:
    """n distinct bright colours (uint8 n x 3), hue by index."""
    h = (np.arange(n) * 0.618033988749895) % 1.0
    i = np.floor(h * 6).astype(int)
    f = h * 6 - i
    v, s = 1.0, 0.85
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    r = np.choose(i % 6, [v, q, p, p, t, v])
    g = np.choose(i % 6, [t, v, v, q, p, p])
    b = np.choose(i % 6, [p, p, t, v, v, q])
    return (np.stack([r, g, b], -1) * 255).astype(np.uint8)


def _disc(img: np.ndarray, x: np.ndarray, y: np.ndarray, color: np.ndarray, radius: int) -> None:
    H, W = img.shape[:2]
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dx * dx + dy * dy > radius * radius:
                continue
            xi, yi = np.rint(x).astype(int) + dx, np.rint(y).astype(int) + dy
            ok = (xi >= 0) & (yi >= 0) & (xi < W) & (yi < H)
            img[yi[ok], xi[ok]] = color[ok]


def _segment(img: np.ndarray, a: np.ndarray, b: np.ndarray, color: np.ndarray) -> None:
    """Line segments from a (N x 2) to b (N x 2), sampled densely."""
    n = int(np.ceil(np.max(np.abs(b - a), initial=0.0))) + 1
    for s in np.linspace(0.0, 1.0, min(n, 64)):
        p = a + s * (b - a)
        _disc(img, p[:, 0], p[:, 1], color, 0)


def overlay_frames(frames: np.ndarray, tracks: Tracks2D, *, trail: int = 8, max_points: int = 300,
                   radius: int = 2) -> np.ndarray:
    """Video frames with visible tracks drawn: a dot per point and a short trail (uint8 T x H x W x 3)."""
    frames = np.asarray(frames)
    T, N = tracks.xy.shape[:2]
    idx = np.arange(N) if N <= max_points else np.linspace(0, N - 1, max_points).astype(int)
    colors = _palette(len(idx))
    xy = tracks.xy[:, idx].astype(np.float64)
    vis = tracks.visible[:, idx]
    out = (frames.astype(np.float32) * 0.75).astype(np.uint8)  # dim the video so tracks stand out
    for t in range(min(T, len(frames))):
        img = out[t].copy()
        for k in range(max(1, t - trail), t + 1):
            both = vis[k] & vis[k - 1]
            if both.any():
                _segment(img, xy[k - 1][both], xy[k][both], colors[both])
        v = vis[t]
        _disc(img, xy[t][v, 0], xy[t][v, 1], colors[v], radius)
        out[t] = img
    return out


def write_overlay(path: str | Path, frames: np.ndarray, tracks: Tracks2D, fps: float = 8.0) -> tuple[Path | None, str]:
    """Write the flow overlay as mp4 (needs imageio + ffmpeg: extra ``io``)."""
    try:
        import imageio.v2 as iio
    except ImportError:
        return None, "overlay video needs imageio: pip install 'dream2flow[io]'"
    path = Path(path)
    arr = overlay_frames(frames, tracks)
    h, w = arr.shape[1:3]
    arr = np.pad(arr, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    try:
        iio.mimwrite(path, arr, fps=fps, macro_block_size=1, quality=8, ffmpeg_params=["-preset", "veryfast"])
    except Exception as e:  # noqa: BLE001 - pictures never fail a run
        return None, f"could not write {path.name}: {type(e).__name__}: {e}"
    return path, ""


def _equal_axes(ax, pts: np.ndarray) -> None:
    """Equal metre scales on x, y, z around ``pts`` (M x 3, at least 4 cm across), labelled."""
    if len(pts):
        lo, hi = pts.min(0), pts.max(0)
        c, r = (lo + hi) / 2, max(float((hi - lo).max()) / 2, 0.02)
        ax.set_xlim(c[0] - r, c[0] + r)
        ax.set_ylim(c[1] - r, c[1] + r)
        ax.set_zlim(c[2] - r, c[2] + r)
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_zlabel("z (m)")


def write_plot3d(path: str | Path, flow: ObjectFlow, *, title: str = "", max_points: int = 200) -> tuple[Path | None, str]:
    """A 3D plot of the flow (PNG, world frame, metres): trajectories coloured by time, start and end."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        return None, "3D plot needs matplotlib: pip install 'dream2flow[viz]'"
    path = Path(path)
    T, N = flow.points.shape[:2]
    idx = np.arange(N) if N <= max_points else np.linspace(0, N - 1, max_points).astype(int)
    P, V = flow.points[:, idx].astype(np.float64), flow.visible[:, idx]
    fig = plt.figure(figsize=(7, 6), dpi=110)
    ax = fig.add_subplot(111, projection="3d")
    cmap = plt.get_cmap("viridis")
    for j in range(len(idx)):
        v = V[:, j]
        if v.sum() < 2:
            continue
        ts = np.nonzero(v)[0]
        ax.plot(P[ts, j, 0], P[ts, j, 1], P[ts, j, 2], color=cmap(0.5), lw=0.4, alpha=0.35)
    for t, label in ((0, "first frame"), (T - 1, "last frame")):
        v = V[t]
        ax.scatter(P[t, v, 0], P[t, v, 1], P[t, v, 2], s=6, color=cmap(t / max(T - 1, 1)), label=label)
    mid = [t for t in range(1, T - 1, max(1, (T - 1) // 6))]
    for t in mid:
        v = V[t]
        ax.scatter(P[t, v, 0], P[t, v, 1], P[t, v, 2], s=2, color=cmap(t / max(T - 1, 1)), alpha=0.5)
    _equal_axes(ax, P[V])
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(title or f"3D object flow: {N} points x {T} frames (world frame)", fontsize=9)
    fig.tight_layout()
    try:
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path, ""


def write_rerun(path: str | Path, flow: ObjectFlow, *, frames: np.ndarray | None = None,
                tracks: Tracks2D | None = None, camera: Any = None) -> tuple[Path | None, str]:
    """A Rerun recording (.rrd) of the flow over time, with the video and 2D tracks if given."""
    try:
        import rerun as rr
    except ImportError as e:
        return None, f"Rerun recording needs rerun-sdk: pip install 'dream2flow[viz]' ({e})"
    path = Path(path)
    try:
        rec = rr.RecordingStream("dream2flow")
        colors = flow.colors if flow.colors is not None else None
        for t in range(flow.num_frames):
            if hasattr(rec, "set_time"):  # rerun >= 0.23
                rec.set_time("frame", sequence=t)
            else:
                rec.set_time_sequence("frame", t)
            v = flow.visible[t]
            rec.log("world/flow", rr.Points3D(flow.points[t][v], colors=None if colors is None else colors[v],
                                              radii=0.003))
            if frames is not None and t < len(frames):
                rec.log("camera/image", rr.Image(frames[t]))
                if tracks is not None:
                    rec.log("camera/image/tracks", rr.Points2D(tracks.xy[t][tracks.visible[t]], radii=2.0))
        rec.save(str(path))
    except Exception as e:  # noqa: BLE001 - pictures never fail a run
        return None, f"could not write {path.name}: {type(e).__name__}: {e}"
    return path, ""


def write_plan_plot(path: str | Path, targets: np.ndarray, visible: np.ndarray, predicted: np.ndarray, *,
                    title: str = "") -> Path:
    """A 3D plot of a plan (PNG, world frame, metres): the motion to follow (K x N x 3 targets where
    visible) against where the plan moves the held points (K x N x 3), with the centroid paths."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    path = Path(path)
    tg, V, pr = np.asarray(targets, float), np.asarray(visible, bool), np.asarray(predicted, float)
    fig = plt.figure(figsize=(7, 6), dpi=110)
    ax = fig.add_subplot(111, projection="3d")
    K = tg.shape[0]
    for k in range(0, K, max(1, K // 8)):
        v = V[k]
        ax.scatter(tg[k, v, 0], tg[k, v, 1], tg[k, v, 2], s=3, color="tab:blue", alpha=0.35)
        ax.scatter(pr[k, :, 0], pr[k, :, 1], pr[k, :, 2], s=3, color="tab:orange", alpha=0.35)
    with np.errstate(invalid="ignore"):
        ct = np.array([tg[k, V[k]].mean(0) if V[k].any() else np.full(3, np.nan) for k in range(K)])
    cp = pr.mean(1)
    ax.plot(ct[:, 0], ct[:, 1], ct[:, 2], color="tab:blue", lw=2, label="motion to follow (visible points)")
    ax.plot(cp[:, 0], cp[:, 1], cp[:, 2], color="tab:orange", lw=2, ls="--", label="held points under the plan")
    _equal_axes(ax, np.concatenate([tg[V], pr.reshape(-1, 3)]))
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(title or "plan", fontsize=9)
    fig.tight_layout()
    try:
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path
