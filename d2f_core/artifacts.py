"""Compact, exactly specified encodings of the big run-folder arrays (video frames, depth videos).

A run folder used to hold the video and the aligned depth as raw arrays (about 45 MB and 60 MB for
49 frames at 640x480). They are now stored compressed, in ``.npz`` files that say their format:

``frames`` (uint8 T x H x W x C: videos, rollout frames) -- **lossless**
    Frame 0 as the difference of each pixel with its left neighbour, every later frame as its
    difference with the frame before (both modulo 256), then zlib (level 1). Decoding undoes the
    differences exactly: the frames round-trip bit for bit. A static camera makes most of the
    differences zero, so a 49-frame 640x480 simulated video takes about 1.4 MB instead of 45 MB.

``depth`` (float32 T x H x W metres) -- **quantised to ``step`` metres** (0.1 mm by default)
    Each finite depth > 0 is rounded to the nearest multiple of ``step`` (error <= step / 2, i.e.
    <= 0.05 mm), stored as uint16 (0 = invalid depth 0 or below, 65535 = NaN / inf, read back as
    NaN), differenced like the frames, split into high and low byte planes, then zlib. ``step`` is
    0.1 mm when the largest depth is under 6.55 m, else the smallest power-of-two multiple of 0.1 mm
    that holds it (0.2 mm to 13.1 m, 0.4 mm to 26.2 m, ...); it is recorded in the file. Nothing
    downstream uses depth finer than that (sensor and video-depth noise is millimetres; the flow
    lifting samples depth at sub-pixel track positions with centimetre-scale object motion), and the
    pipeline keeps the *quantised* depth in memory too, so a resumed run and a fresh one see the same
    numbers.

Every file records ``d2f_format`` (``"frames/1"`` or ``"depth/1"``) and the array's shape and dtype;
the decoded size is checked against the array-size cap (:mod:`d2f_core.safeload`) before anything is
decompressed, so a small file cannot expand to gigabytes. Files written before these formats existed
(raw ``frames`` / ``depth`` arrays) still load unchanged. A file of an unknown format version, or one
that does not decode, is a :class:`~d2f_core.types.DataError` saying to re-run the stage.

Only numpy and the standard library (zlib).
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from .types import DataError

__all__ = ["FRAMES_FORMAT", "DEPTH_FORMAT", "DEPTH_STEP_M", "encode_frames", "decode_frames", "encode_depth",
           "decode_depth", "quantise_depth", "depth_step", "save_frames", "load_frames", "save_depth", "load_depth",
           "RERUN_HINT"]

FRAMES_FORMAT = "frames/1"
DEPTH_FORMAT = "depth/1"
DEPTH_STEP_M = 1e-4
"""Default depth quantisation step, metres (0.1 mm)."""
_NAN_CODE = 65535
_LEVEL = 1
RERUN_HINT = "delete it (or the run folder) and re-run the command that wrote it (`d2f run` / `d2f flow extract`)"


def _diff(a: np.ndarray) -> np.ndarray:
    """Frame 0: difference with the left neighbour; frame t > 0: difference with frame t-1 (wrapping)."""
    d = a.copy()
    d[1:] -= a[:-1]
    if a.shape[0] and a.ndim >= 3 and a.shape[2] > 1:
        d[0, :, 1:] -= a[0, :, :-1]
    return d


def _undiff(d: np.ndarray) -> np.ndarray:
    a = d.copy()
    if a.shape[0] and a.ndim >= 3 and a.shape[2] > 1:
        np.cumsum(a[0], axis=1, dtype=a.dtype, out=a[0])
    for t in range(1, a.shape[0]):  # per frame: much faster than cumsum over axis 0 for small dtypes
        np.add(a[t], a[t - 1], out=a[t])
    return a


def _inflate(blob: np.ndarray, nbytes: int, where: str) -> bytes:
    from .safeload import _human, max_array_bytes
    limit = max_array_bytes()
    if nbytes > limit:
        raise DataError(f"{where}: declares {_human(nbytes)} of data, over the {_human(limit)} cap on array files; "
                        "if the file is genuine, raise the cap with D2F_MAX_ARRAY_BYTES=<bytes>")
    try:
        z = zlib.decompressobj()
        raw = z.decompress(np.ascontiguousarray(blob, np.uint8).tobytes(), nbytes + 1)
    except zlib.error as e:
        raise DataError(f"{where}: compressed data is corrupt ({e}); {RERUN_HINT}") from None
    if len(raw) != nbytes:
        raise DataError(f"{where}: compressed data holds {len(raw)} bytes, the header says {nbytes}; the file is "
                        f"truncated or altered; {RERUN_HINT}")
    return raw


def _shape(z: Mapping[str, Any], where: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in np.asarray(z["shape"]).tolist())
    except (KeyError, TypeError, ValueError):
        raise DataError(f"{where}: no valid 'shape' entry; {RERUN_HINT}") from None
    if any(v < 0 for v in shape):
        raise DataError(f"{where}: negative shape {shape}; {RERUN_HINT}")
    return shape


def _format(z: Mapping[str, Any]) -> str | None:
    return str(z["d2f_format"]) if "d2f_format" in getattr(z, "files", z) else None


def _check_format(fmt: str, want: str, where: str) -> None:
    if fmt != want:
        raise DataError(f"{where}: written in format {fmt!r}, this dream2flow reads {want!r} (and the raw arrays "
                        f"of older versions); upgrade dream2flow, or {RERUN_HINT}")


# ---------------------------------------------------------------------------------------------- frames


def encode_frames(frames: np.ndarray) -> dict[str, np.ndarray]:
    """npz entries holding uint8 frames (T x H x W [x C]) losslessly (see the module doc)."""
    a = np.asarray(frames)
    if a.dtype != np.uint8 or a.ndim < 3:
        raise DataError(f"frames: expected uint8 T x H x W [x C], got {a.dtype} {a.shape}")
    blob = zlib.compress(_diff(np.ascontiguousarray(a)).tobytes(), _LEVEL)
    return {"d2f_format": np.array(FRAMES_FORMAT), "shape": np.array(a.shape, np.int64),
            "data": np.frombuffer(blob, np.uint8)}


def decode_frames(z: Mapping[str, Any], where: str = "frames") -> np.ndarray:
    """The frames of npz entries written by :func:`encode_frames` (or a raw ``frames`` array of old files)."""
    fmt = _format(z)
    if fmt is None:
        if "frames" in getattr(z, "files", z):
            return np.asarray(z["frames"])  # written before the compact format: raw array
        raise DataError(f"{where}: neither encoded frames nor a 'frames' array; {RERUN_HINT}")
    _check_format(fmt, FRAMES_FORMAT, where)
    shape = _shape(z, where)
    raw = _inflate(z["data"], int(np.prod(shape, dtype=np.int64)), where)
    return _undiff(np.frombuffer(raw, np.uint8).reshape(shape))


def _load_npz(path: str | Path, decode: Callable[[Any, str], np.ndarray]) -> np.ndarray:
    """``decode(npz, where)`` of the ``.npz`` at ``path``; an unreadable file is a DataError saying re-run."""
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as z:
            return decode(z, str(p))
    except (OSError, ValueError) as e:
        raise DataError(f"{p}: not a readable .npz ({type(e).__name__}: {e}); {RERUN_HINT}") from None


def save_frames(path: str | Path, frames: np.ndarray, **extra: Any) -> None:
    """Write frames (plus small ``extra`` entries such as fps) to ``path`` (.npz, uncompressed zip)."""
    with open(path, "wb") as f:
        np.savez(f, **encode_frames(frames), **extra)


def load_frames(path: str | Path) -> np.ndarray:
    """Frames of a ``.npz`` written by :func:`save_frames` or a raw-``frames`` file of an older run."""
    return _load_npz(path, decode_frames)


# ---------------------------------------------------------------------------------------------- depth


def depth_step(depth: np.ndarray) -> float:
    """The quantisation step (metres) used for ``depth``: 0.1 mm, doubled until the largest depth fits."""
    d = np.asarray(depth)
    with np.errstate(invalid="ignore"):
        top = float(np.max(d, where=np.isfinite(d) & (d > 0), initial=0.0)) if d.size else 0.0
    step = DEPTH_STEP_M
    while top / step > _NAN_CODE - 1.5:
        step *= 2
    return step


def _codes(depth: np.ndarray, step: float) -> np.ndarray:
    x = np.asarray(depth, np.float32) / np.float32(step)
    bad = ~np.isfinite(x)
    with np.errstate(invalid="ignore"):
        low = x <= 0
    np.rint(x, out=x)
    np.clip(x, 1, _NAN_CODE - 1, out=x)
    x[low] = 0
    x[bad] = _NAN_CODE
    return x.astype(np.uint16)


def _from_codes(q: np.ndarray, step: float) -> np.ndarray:
    out = q.astype(np.float32) * np.float32(step)
    out[q == _NAN_CODE] = np.nan
    return out


def quantise_depth(depth: np.ndarray, step: float | None = None) -> np.ndarray:
    """float32 depth exactly as :func:`decode_depth` will give it back (what the pipeline keeps in memory)."""
    step = depth_step(depth) if step is None else step
    return _from_codes(_codes(depth, step), step)


def encode_depth(depth: np.ndarray, step: float | None = None) -> dict[str, np.ndarray]:
    """npz entries holding a float depth video (T x H x W metres) quantised to ``step`` (see the module doc)."""
    d = np.asarray(depth)
    if d.ndim < 2 or not np.issubdtype(d.dtype, np.floating):
        raise DataError(f"depth: expected float T x H x W metres, got {d.dtype} {d.shape}")
    step = depth_step(d) if step is None else float(step)
    y = _diff(_codes(d, step))
    planes = np.stack([(y >> 8).astype(np.uint8), (y & 255).astype(np.uint8)])
    blob = zlib.compress(planes.tobytes(), _LEVEL)
    return {"d2f_format": np.array(DEPTH_FORMAT), "shape": np.array(d.shape, np.int64),
            "depth_step_m": np.float64(step), "data": np.frombuffer(blob, np.uint8)}


def decode_depth(z: Mapping[str, Any], where: str = "depth") -> np.ndarray:
    """float32 depth (metres, NaN where invalid-as-NaN) of npz entries from :func:`encode_depth`, or the raw
    ``depth`` array of files written before the compact format."""
    fmt = _format(z)
    if fmt is None:
        if "depth" in getattr(z, "files", z):
            return np.asarray(z["depth"])
        raise DataError(f"{where}: neither encoded depth nor a 'depth' array; {RERUN_HINT}")
    _check_format(fmt, DEPTH_FORMAT, where)
    shape = _shape(z, where)
    n = int(np.prod(shape, dtype=np.int64))
    step = float(z["depth_step_m"])
    if not (np.isfinite(step) and step > 0):
        raise DataError(f"{where}: depth_step_m {step} is not a positive number; {RERUN_HINT}")
    planes = np.frombuffer(_inflate(z["data"], 2 * n, where), np.uint8).reshape((2,) + shape)
    y = (planes[0].astype(np.uint16) << 8) | planes[1]
    return _from_codes(_undiff(y), step)


def save_depth(path: str | Path, depth: np.ndarray, step: float | None = None, **extra: Any) -> None:
    with open(path, "wb") as f:
        np.savez(f, **encode_depth(depth, step), **extra)


def load_depth(path: str | Path) -> np.ndarray:
    return _load_npz(path, decode_depth)
