"""Resolution handling between the camera image and a video model's frames (paper §4.2, issue 3).

A video model rarely works at the camera's size or aspect (Wan 480x832, Veo 720p). The core keeps
every downstream step in **camera pixels** with the camera's own ``K``: video frames (and any
per-frame depth that came with them) are mapped back into the camera image with the
:class:`~d2f_core.types.Framing` that made the conditioning image. Intrinsics never change, so
lifting with ``K`` and ``T_world_cam`` stays exact; pixels of the camera image that the video does
not cover (a cropped framing) are reported, never silently invented.

Pure numpy (separable bilinear sampling), no heavy imports.
"""

from __future__ import annotations

import numpy as np

from ..types import DataError, Framing

MODES = ("stretch", "crop", "pad")


def framing_for(cam_w: int, cam_h: int, frame_w: int, frame_h: int, mode: str = "stretch") -> Framing:
    """The framing that fits a ``cam_w x cam_h`` image into ``frame_w x frame_h`` frames.

    ``stretch`` scales each axis to fill (aspect not kept); ``crop`` keeps the aspect and covers
    the frame (the camera image's borders fall outside); ``pad`` keeps the aspect and fits inside
    (the frame's borders are padding).
    """
    if mode not in MODES:
        raise DataError(f"framing mode {mode!r}: expected one of {', '.join(MODES)}")
    for n, v in (("cam_w", cam_w), ("cam_h", cam_h), ("frame_w", frame_w), ("frame_h", frame_h)):
        if int(v) < 1:
            raise DataError(f"{n}: expected a positive size in pixels, got {v}")
    if mode == "stretch":
        return Framing(frame_w / cam_w, frame_h / cam_h, 0.0, 0.0, int(frame_w), int(frame_h), mode)
    s = (max if mode == "crop" else min)(frame_w / cam_w, frame_h / cam_h)
    return Framing(s, s, (frame_w - s * cam_w) / 2.0, (frame_h - s * cam_h) / 2.0, int(frame_w),
                   int(frame_h), mode)


def _axis(n_out: int, scale: float, offset: float, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sample positions along one axis: output index i reads input coordinate scale*(i+0.5)+offset-0.5."""
    pos = scale * (np.arange(n_out) + 0.5) + offset - 0.5
    inside = (pos >= -0.5) & (pos <= n_in - 0.5)
    pos = np.clip(pos, 0.0, n_in - 1.0)
    i0 = np.floor(pos).astype(np.int64)
    i1 = np.minimum(i0 + 1, n_in - 1)
    w = (pos - i0).astype(np.float32)
    return i0, i1, w, inside


def _resample(images: np.ndarray, out_w: int, out_h: int, sx: float, sy: float, ox: float, oy: float,
              nearest: bool) -> tuple[np.ndarray, np.ndarray]:
    """Resample T x h x w (x C) arrays so that output pixel (x, y) reads input (sx*(x+.5)+ox-.5, ...)."""
    n_in_h, n_in_w = images.shape[1:3]
    y0, y1, wy, iny = _axis(out_h, sy, oy, n_in_h)
    x0, x1, wx, inx = _axis(out_w, sx, ox, n_in_w)
    covered = iny[:, None] & inx[None, :]
    if nearest:
        yi = np.where(wy < 0.5, y0, y1)
        xi = np.where(wx < 0.5, x0, x1)
        return images[:, yi][:, :, xi], covered
    out = np.empty((images.shape[0], out_h, out_w) + images.shape[3:], np.float32)
    extra = (None,) * (images.ndim - 3)
    wy_ = wy[(slice(None), None) + extra]  # broadcast over (rows, cols, channels)
    wx_ = wx[(slice(None),) + extra]       # broadcast over (cols, channels)
    for t in range(images.shape[0]):  # frame by frame: bounded memory for long videos
        f = images[t].astype(np.float32)
        rows = f[y0] * (1 - wy_) + f[y1] * wy_
        out[t] = rows[:, x0] * (1 - wx_) + rows[:, x1] * wx_
    return out, covered


def frames_to_camera(frames: np.ndarray, framing: Framing, cam_w: int, cam_h: int) -> tuple[np.ndarray, np.ndarray]:
    """Map uint8 T x h x w x 3 model frames into the camera image (bilinear).

    Returns (frames uint8 T x cam_h x cam_w x 3, covered bool cam_h x cam_w): ``covered`` is False
    where the camera pixel fell outside the model's frame (a cropped framing); those pixels hold
    the nearest border value and must not be trusted.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise DataError(f"frames: expected T x H x W x 3, got shape {frames.shape}")
    if frames.shape[1:3] != (framing.height, framing.width):
        raise DataError(f"frames are {frames.shape[2]}x{frames.shape[1]} but the framing describes "
                        f"{framing.width}x{framing.height} frames")
    out, covered = _resample(frames, cam_w, cam_h, framing.sx, framing.sy, framing.ox, framing.oy, nearest=False)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), covered


def depth_to_camera(depth: np.ndarray, framing: Framing, cam_w: int, cam_h: int) -> np.ndarray:
    """Map T x h x w per-frame depth into the camera image, nearest neighbour (never blends across
    a depth edge); uncovered pixels become 0 (invalid)."""
    depth = np.asarray(depth, dtype=np.float32)
    out, covered = _resample(depth, cam_w, cam_h, framing.sx, framing.sy, framing.ox, framing.oy, nearest=True)
    out = np.where(covered[None], out, 0.0).astype(np.float32)
    return out


def fit_image(image: np.ndarray, framing: Framing) -> np.ndarray:
    """The camera image as a model would receive it (uint8 frame.height x frame.width x 3).

    For adapters: the inverse of :func:`frames_to_camera`; padding is black.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise DataError(f"image: expected H x W x 3, got shape {image.shape}")
    h, w = image.shape[:2]
    out, covered = _resample(image[None], framing.width, framing.height, 1.0 / framing.sx, 1.0 / framing.sy,
                             -framing.ox / framing.sx, -framing.oy / framing.sy, nearest=False)
    out = np.where(covered[None, ..., None], out, 0.0)
    return np.clip(np.rint(out[0]), 0, 255).astype(np.uint8)


def camera_to_frame_xy(xy: np.ndarray, framing: Framing) -> np.ndarray:
    """Camera pixel coordinates (..., 2) to model frame pixel coordinates."""
    xy = np.asarray(xy, dtype=np.float64)
    s = np.array([framing.sx, framing.sy])
    o = np.array([framing.ox, framing.oy])
    return s * (xy + 0.5) + o - 0.5


def frame_to_camera_xy(xy: np.ndarray, framing: Framing) -> np.ndarray:
    """Model frame pixel coordinates (..., 2) to camera pixel coordinates."""
    xy = np.asarray(xy, dtype=np.float64)
    s = np.array([framing.sx, framing.sy])
    o = np.array([framing.ox, framing.oy])
    return (xy + 0.5 - o) / s - 0.5
