"""``lucas-kanade`` tracker: speed and drift on synthetic sequences with known motion.

Run:  python benchmarks/bench_lucas_kanade.py [--repeat 3] [--long 200] [--write FILE]

Prints a markdown section (the lead merges it into docs/benchmarks.md):

* time for 49 frames at 480x640 with 1024 points queried on frame 0 (the flow-extraction
  setting; whole-extraction target < 5 s, so tracking should stay well under ~3 s);
* tracking error vs frame index on a textured plane that translates (0.37, -0.23) px/frame and
  rotates 0.1 deg/frame about a point near the image centre, rendered with cv2.warpAffine from a
  smooth random RGB texture plus Gaussian pixel noise (sigma 2 grey levels), for 49 and 200
  frames (and 200 frames of pure translation with noise sigma 5), with re-anchoring to the
  query frame (default, every frame), every 8 frames, and without (pure frame-to-frame
  chaining).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _doc import publish  # noqa: E402

SECTION = "## Lucas-Kanade tracker (issue 3)"


def smooth_texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """uint8 h x w x 3: a sum of blurred noise at three scales per channel (trackable everywhere)."""
    import cv2
    rng = np.random.default_rng(seed)
    out = np.zeros((h, w, 3), np.float32)
    for c in range(3):
        acc = np.zeros((h, w), np.float32)
        for sigma, weight in ((12.0, 1.0), (5.0, 0.7), (2.0, 0.4)):
            acc += weight * cv2.GaussianBlur(rng.normal(size=(h, w)).astype(np.float32), (0, 0), sigma) * sigma
        out[..., c] = acc
    out = (out - out.mean((0, 1))) / out.std((0, 1))
    return np.clip(128 + 45 * out, 0, 255).astype(np.uint8)


def affine(t: float, velocity: tuple[float, float], omega_deg: float, centre: tuple[float, float],
           offset: tuple[float, float]) -> np.ndarray:
    """2 x 3 map from texture pixels to frame-t pixels: shift by -offset, rotate by omega*t
    about centre, translate by velocity*t."""
    a = np.deg2rad(omega_deg * t)
    c, s = np.cos(a), np.sin(a)
    R = np.array([[c, -s], [s, c]])
    cx, cy = centre
    # p_frame = R (p_tex - offset - centre) + centre + v t
    b = -R @ (np.asarray(offset) + np.asarray(centre)) + np.asarray(centre) + np.asarray(velocity) * t
    return np.hstack([R, b[:, None]])


def make_sequence(T: int, H: int = 480, W: int = 640, velocity=(0.37, -0.23), omega_deg: float = 0.1,
                  noise: float = 2.0, seed: int = 0):
    """(frames uint8 T x H x W x 3 RGB, list of 2 x 3 texture->frame maps)."""
    import cv2
    pad = int(max(H, W) * 0.6) + int(np.hypot(*velocity) * T)
    tex = smooth_texture(H + 2 * pad, W + 2 * pad, seed)
    rng = np.random.default_rng(seed + 1)
    centre = (W * 0.45, H * 0.55)
    maps, frames = [], np.empty((T, H, W, 3), np.uint8)
    for t in range(T):
        A = affine(t, velocity, omega_deg, centre, (pad, pad))
        img = cv2.warpAffine(tex, A, (W, H), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        img = img.astype(np.float32) + rng.normal(0, noise, img.shape).astype(np.float32)
        frames[t] = np.clip(np.round(img), 0, 255).astype(np.uint8)
        maps.append(A)
    return frames, maps


def true_tracks(maps: list[np.ndarray], queries: np.ndarray) -> np.ndarray:
    """T x N x 2 true positions of queries (t, x, y)."""
    out = np.empty((len(maps), len(queries), 2))
    for i, (t, x, y) in enumerate(queries):
        A = maps[int(t)]
        src = np.linalg.solve(A[:, :2], np.array([x, y]) - A[:, 2])
        for k, M in enumerate(maps):
            out[k, i] = M[:, :2] @ src + M[:, 2]
    return out


def grid_queries(n: int, H: int, W: int, margin: float = 0.2, t: int = 0) -> np.ndarray:
    side = int(np.ceil(np.sqrt(n * W / H)))
    xs = np.linspace(margin * W, (1 - margin) * W, side)
    ys = np.linspace(margin * H, (1 - margin) * H, int(np.ceil(n / side)))
    g = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)[:n]
    return np.hstack([np.full((len(g), 1), t), g]).astype(np.float32)


def errors(tracks, truth: np.ndarray):
    err = np.linalg.norm(tracks.xy - truth, axis=-1)
    err = np.where(tracks.visible, err, np.nan)
    return err


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--long", type=int, default=200, help="frames of the long drift sequence (0 = skip)")
    ap.add_argument("--write", type=Path, default=None, help="write the section to this file")
    a = ap.parse_args()

    from d2f_core import Video
    from d2f_plugins.tracker.lucas_kanade import LucasKanadeOptions, LucasKanadeTracker
    import cv2

    H, W, N = 480, 640, 1024
    lines = [SECTION, "",
             f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, {os.cpu_count()} cores, "
             f"Python {platform.python_version()}, OpenCV {cv2.__version__} ({cv2.getNumThreads()} threads); "
             f"command: `python benchmarks/bench_lucas_kanade.py --repeat {a.repeat} --long {a.long}`.", ""]

    # ---- speed
    frames, maps = make_sequence(49, H, W)
    video = Video(frames=frames, fps=8.0)
    q = grid_queries(N, H, W)
    rng = np.random.default_rng(0)
    q_any = grid_queries(N, H, W, margin=0.3)
    q_any[:, 0] = rng.integers(0, 49, N)
    q_any[:, 1:] = true_tracks(maps, q_any * [0, 1, 1])[q_any[:, 0].astype(int), np.arange(N)]
    rows = []
    for label, opts, queries in (("default (re-anchor every frame)", {}, q),
                                 ("re-anchor every 8 frames", {"anchor_every": 8}, q),
                                 ("no re-anchoring", {"anchor_every": 0}, q),
                                 ("default, queries on random frames 0-48", {}, q_any)):
        tr = LucasKanadeTracker(LucasKanadeOptions(**opts))
        times = []
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            tr.track(video, queries)
            times.append(time.perf_counter() - t0)
        rows.append((label, times))
    lines += [f"Speed: 49 frames, {H}x{W}, {N} points (queried on frame 0 unless said), whole `track()` call "
              "(target: well under 3 s).", "",
              "| options | median | min | max |", "|---|---|---|---|"]
    for label, xs in rows:
        lines.append(f"| {label} | {statistics.median(xs):.2f} s | {min(xs):.2f} s | {max(xs):.2f} s |")
    lines.append("")

    # ---- drift
    configs = (("anchor every frame (default)", {}), ("anchor every 8", {"anchor_every": 8}),
               ("no anchoring", {"anchor_every": 0}))
    scenarios = [(49, (0.37, -0.23), 0.1, 2.0)]
    if a.long:
        scenarios += [(a.long, (0.37, -0.23), 0.1, 2.0), (a.long, (0.37, -0.23), 0.0, 5.0)]
    for T, vel, omega, noise in scenarios:
        frames, maps = make_sequence(T, H, W, velocity=vel, omega_deg=omega, noise=noise)
        video = Video(frames=frames, fps=8.0)
        q = grid_queries(N, H, W, margin=0.3)
        truth = true_tracks(maps, q)
        step = max(1, (T - 1) // 6)
        idx = sorted(set(list(range(0, T, step)) + [T - 1]))
        motion = f"translation ({vel[0]}, {vel[1]}) px/frame" + (f" + rotation {omega} deg/frame" if omega else "")
        lines += [f"Error vs frame index, {T} frames {H}x{W}, {len(q)} points (grid over the central 40 %), "
                  f"{motion}, pixel noise sigma {noise:g}: mean / max error (px) of visible points "
                  "(visible fraction).", "",
                  "| frame | " + " | ".join(c for c, _ in configs) + " |",
                  "|---|" + "---|" * len(configs)]
        results = []
        for _, opts in configs:
            tracks = LucasKanadeTracker(LucasKanadeOptions(**opts)).track(video, q)
            results.append((errors(tracks, truth), tracks.visible))
        for t in idx:
            cells = []
            for err, vis in results:
                e = err[t][np.isfinite(err[t])]
                cells.append(f"{e.mean():.3f} / {e.max():.3f} ({vis[t].mean():.0%})" if e.size else "- (0%)")
            lines.append(f"| {t} | " + " | ".join(cells) + " |")
        cells = []
        for err, vis in results:
            e = err[np.isfinite(err)]
            cells.append(f"{e.mean():.3f} / {e.max():.3f} ({vis.mean():.0%})")
        lines.append("| all frames | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["Without anchoring the error grows with the frame index: linearly under rotation (LK's "
              "translation-only window is biased when the patch rotates, and the bias accumulates), like a "
              "random walk under pure translation with noise. Re-anchoring to the query frame's patch, "
              "warped by the local affine motion of the neighbouring tracks, keeps it flat.", ""]
    text = "\n".join(lines) + "\n"
    publish(a.write, SECTION, text)


if __name__ == "__main__":
    main()
