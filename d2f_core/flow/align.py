"""Depth alignment: fit Z = s * Z_est + b to the real first-frame depth D0 (paper §4.2).

Monocular video depth is known only up to a global scale and shift; one (s*, b*) pair is fitted
on the pixels valid in both maps of frame 0 and applied to every frame. The fit is robust
(RANSAC start, then iteratively re-weighted least squares with Tukey bisquare weights) and
refuses degenerate inputs.
"""

from __future__ import annotations

import numpy as np

from ..types import Alignment, DataError


class AlignmentError(DataError):
    """The depth alignment is degenerate; the message says why and what to check."""


def fit_scale_shift(est: np.ndarray, ref: np.ndarray, *, mode: str = "scale_shift",
                    min_pixels: int = 100, huber_delta: float | None = None,
                    iterations: int = 20) -> Alignment:
    """Robustly fit ``ref ≈ scale * est + shift`` on pixels valid (finite, > 0) in both.

    ``est``: estimated depth of frame 0 (any units); ``ref``: metric depth D0 (metres).
    ``mode``: "scale_shift" or "scale" (shift fixed at 0). ``huber_delta``: the bisquare cut-off in
    metres (default: 4.685 x a robust scale of the RANSAC residuals). Raises AlignmentError when fewer than
    ``min_pixels`` pixels are valid, the estimate is constant, or the scale comes out <= 0.
    """
    est = np.asarray(est, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if est.shape != ref.shape:
        raise AlignmentError(f"depth alignment: estimated depth {est.shape} and reference depth "
                             f"{ref.shape} differ in size; resize the video depth to the camera image")
    if mode not in ("scale_shift", "scale"):
        raise AlignmentError(f"depth alignment: mode {mode!r} is not 'scale_shift' or 'scale'")
    ok = np.isfinite(est) & np.isfinite(ref) & (est > 0) & (ref > 0)
    n = int(ok.sum())
    if n < min_pixels:
        raise AlignmentError(f"depth alignment: only {n} pixels have valid depth in both the video's "
                             f"first frame and the reference depth (need >= {min_pixels}); check that "
                             "initial_depth is in metres and not all zero, and that the depth estimator ran")
    x, y = est[ok], ref[ok]
    if np.ptp(x) <= 1e-9 * max(1.0, abs(x).max()) and mode == "scale_shift":
        raise AlignmentError("depth alignment: the estimated depth is constant on the valid pixels; "
                             "scale and shift cannot both be fitted (use align: scale)")
    A = np.stack([x, np.ones_like(x)], 1) if mode == "scale_shift" else x[:, None]
    coef = _ransac_init(x, y, mode, seed=0)
    r = y - A @ coef
    # Tukey bisquare IRLS from the RANSAC start: redescending, so gross errors in the *estimated*
    # depth (high-leverage points, which Huber cannot reject) get zero weight. Scale fixed from
    # the RANSAC residuals.
    c = huber_delta if huber_delta is not None else max(4.685 * 1.4826 * np.median(np.abs(r)), 1e-6)
    for _ in range(iterations):
        u = np.abs(r) / c
        w = np.where(u < 1, (1 - u ** 2) ** 2, 0.0)
        sw = np.sqrt(w)
        coef_new, *_ = np.linalg.lstsq(A * sw[:, None], y * sw, rcond=None)
        r = y - A @ coef_new
        if np.allclose(coef_new, coef, rtol=1e-9, atol=1e-12):
            coef = coef_new
            break
        coef = coef_new
    scale = float(coef[0])
    shift = float(coef[1]) if mode == "scale_shift" else 0.0
    if not np.isfinite(scale) or scale <= 0:
        raise AlignmentError(f"depth alignment: fitted scale {scale:.4g} is not positive; the "
                             "estimated depth may be inverse depth (disparity) — convert it to depth first")
    r = y - (scale * x + shift)
    inl = np.abs(r) <= 3 * max(np.median(np.abs(r)) * 1.4826, 1e-6)
    residual = float(np.sqrt(np.mean(r[inl] ** 2))) if inl.any() else float(np.sqrt(np.mean(r ** 2)))
    return Alignment(scale=scale, shift=shift, residual=residual, num_pixels=n)


def _ransac_init(x: np.ndarray, y: np.ndarray, mode: str, seed: int, iterations: int = 200,
                 sample: int = 20000) -> np.ndarray:
    """Minimal-sample RANSAC for a robust starting point (outliers can otherwise steer IRLS)."""
    rng = np.random.default_rng(seed)
    if x.size > sample:
        pick = rng.choice(x.size, sample, replace=False)
        x, y = x[pick], y[pick]
    thr = max(0.01 * float(np.median(y)), 1e-4)  # 1 % of the scene depth
    best, best_n = None, -1
    for _ in range(iterations):
        if mode == "scale_shift":
            i, j = rng.choice(x.size, 2, replace=False)
            if abs(x[i] - x[j]) < 1e-12:
                continue
            s = (y[i] - y[j]) / (x[i] - x[j])
            coef = np.array([s, y[i] - s * x[i]])
            pred = s * x + coef[1]
        else:
            i = rng.integers(x.size)
            coef = np.array([y[i] / x[i]])
            pred = coef[0] * x
        if coef[0] <= 0:
            continue
        n = int(np.sum(np.abs(y - pred) <= thr))
        if n > best_n:
            best, best_n = coef, n
    if best is None:  # every sample degenerate: fall back to least squares
        A = np.stack([x, np.ones_like(x)], 1) if mode == "scale_shift" else x[:, None]
        best = np.linalg.lstsq(A, y, rcond=None)[0]
    return best


def apply_alignment(depth: np.ndarray, alignment: Alignment) -> np.ndarray:
    """Metric depth (float32) from estimated depth; invalid pixels (<= 0, NaN) stay 0."""
    d = np.asarray(depth, dtype=np.float32)
    out = np.empty(d.shape, np.float32)
    for t in range(d.shape[0]) if d.ndim == 3 else [...]:  # frame by frame: cache-friendly, bounded memory
        f = d[t]
        o = f * np.float32(alignment.scale)
        o += np.float32(alignment.shift)
        o[~(f > 0) | ~(o > 0)] = 0.0  # invalid estimates (<= 0, NaN) and non-positive results
        out[t] = o
    return out
