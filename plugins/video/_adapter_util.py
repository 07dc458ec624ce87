"""Helpers shared by the video-model adapters (``wan2.1``, ``veo3``, ``kling``).

* secrets: :func:`env_secret` reads an API key from the environment; :func:`scrub` removes
  secrets from any text before it reaches an exception or a log.
* retries: :func:`call_with_retries` retries a call on transient failures with exponential
  backoff (full jitter off by default so tests are reproducible), bounded by a deadline.
* HTTP: :func:`http_request` is a small stdlib (urllib) client returning status, headers and
  body for every status code (no exception for 4xx/5xx), so callers decide what is retryable.
* frames: :func:`resample_frames` (evenly spaced, first and last kept), :func:`resize_frames`,
  :func:`pad_to_aspect` / :func:`crop_box` (letterboxing an image to a service's aspect ratio
  and undoing it on the returned frames), :func:`encode_image`, :func:`decode_video_bytes`.

The local stand-ins of the services (``d2f check`` and the tests) are test machinery and live in
``d2f_conformance.standins``, not here.

Heavy modules (Pillow, imageio) are imported inside functions only.
"""

from __future__ import annotations

import io
import json
import os
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from d2f_core.registry import PluginError

__all__ = [
    "VideoServiceError", "TransientError", "env_secret", "scrub", "call_with_retries", "HttpResponse",
    "http_request", "check_num_frames", "resample_frames", "resize_frames", "pad_to_aspect", "crop_box",
    "encode_image", "decode_video_bytes",
]


class VideoServiceError(PluginError):
    """A remote video service refused or failed a request (quota, safety filter, failed task,
    timeout). The message says which and what to do; it never contains an API key."""


class TransientError(Exception):
    """A failure worth retrying (HTTP 429 rate limit, 5xx, connection reset, read timeout)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# --------------------------------------------------------------------------- secrets


def env_secret(*names: str) -> tuple[str | None, str | None]:
    """(name, value) of the first of ``names`` set to a non-blank value in the environment."""
    for n in names:
        v = os.environ.get(n, "")
        if v.strip():
            return n, v.strip()
    return None, None


def scrub(text: Any, secrets: Iterable[str | None]) -> str:
    """``text`` with every secret (of 4+ characters) replaced by ``***``."""
    s = str(text)
    for secret in secrets:
        if secret and len(secret) >= 4:
            s = s.replace(secret, "***")
    return s


# --------------------------------------------------------------------------- retries


def call_with_retries(fn: Callable[[], Any], *, what: str, retries: int, backoff_s: float,
                      max_backoff_s: float = 60.0, deadline: float | None = None,
                      sleep: Callable[[float], None] = time.sleep, jitter: bool = False,
                      on_retry: Callable[[int, float, TransientError], None] | None = None) -> Any:
    """Call ``fn()``; on :class:`TransientError` wait and try again, at most ``retries`` times.

    Waits ``backoff_s * 2**attempt`` seconds (capped at ``max_backoff_s``; the server's
    ``Retry-After`` when it gives one and it is longer), never past ``deadline``
    (a ``time.monotonic()`` value). When the retries or the time run out, raises
    :class:`VideoServiceError` naming ``what`` and the last failure.
    """
    attempt = 0
    while True:
        try:
            return fn()
        except TransientError as e:
            if attempt >= retries:
                raise VideoServiceError(f"{what} failed {attempt + 1} time(s), last: {e}; the service is "
                                        "busy or unreachable, try again later or raise the 'retries' "
                                        "option") from None
            wait = min(max_backoff_s, backoff_s * (2 ** attempt))
            if jitter:
                wait = random.uniform(0.5 * wait, wait)
            if e.retry_after is not None:
                wait = max(wait, min(float(e.retry_after), max_backoff_s))
            if deadline is not None and time.monotonic() + wait > deadline:
                raise VideoServiceError(f"{what}: gave up after {attempt + 1} attempt(s) because the overall "
                                        f"timeout would pass while waiting to retry (last: {e}); raise the "
                                        "'timeout_s' option") from None
            if on_retry is not None:
                on_retry(attempt, wait, e)
            sleep(wait)
            attempt += 1


# --------------------------------------------------------------------------- HTTP


@dataclass
class HttpResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return None

    def retry_after(self) -> float | None:
        v = self.headers.get("Retry-After") or self.headers.get("retry-after")
        try:
            return float(v) if v is not None else None
        except ValueError:
            return None


def http_request(method: str, url: str, *, headers: Mapping[str, str] | None = None,
                 body: Any = None, timeout: float = 60.0, max_bytes: int = 2 << 30) -> HttpResponse:
    """One HTTP request with urllib. ``body``: bytes, or a JSON-able object (sent as JSON).

    Returns the response for every HTTP status. Network failures (refused, reset, timeout)
    raise :class:`TransientError`; a malformed URL raises ValueError.
    """
    import socket
    import urllib.error
    import urllib.request

    data = None
    hdrs = dict(headers or {})
    if body is not None:
        if isinstance(body, (bytes, bytearray)):
            data = bytes(body)
        else:
            data = json.dumps(body).encode("utf-8")
            hdrs.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method.upper(), headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310 - URL from options
            return HttpResponse(r.status, dict(r.headers.items()), r.read(max_bytes))
    except urllib.error.HTTPError as e:
        try:
            payload = e.read(1 << 20)
        except Exception:  # noqa: BLE001
            payload = b""
        return HttpResponse(e.code, dict(e.headers.items()) if e.headers else {}, payload)
    except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError) as e:
        reason = getattr(e, "reason", e)
        raise TransientError(f"{method.upper()} {_strip_query(url)}: {type(reason).__name__}: {reason}") from None


def _strip_query(url: str) -> str:
    return url.split("?", 1)[0]


# --------------------------------------------------------------------------- frames


def check_generate_inputs(image: Any, prompt: Any, last_image: Any, num_frames: Any) -> int:
    """Validate ``VideoModel.generate``'s arguments (uint8 RGB images of one size, a str prompt,
    num_frames >= 2); returns num_frames as an int."""
    from d2f_core.validate import check_image

    check_image(image, "image")
    if last_image is not None:
        check_image(last_image, "last_image")
        if last_image.shape != image.shape:
            raise ValueError(f"last_image: must be the size of image {image.shape[:2]}, got {last_image.shape[:2]}")
    if not isinstance(prompt, str):
        raise ValueError(f"prompt: expected a string, got {type(prompt).__name__}")
    return check_num_frames(num_frames)


def check_num_frames(num_frames: Any) -> int:
    if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) or num_frames < 2:
        raise ValueError(f"num_frames: expected an integer >= 2, got {num_frames!r}")
    return int(num_frames)


def resample_frames(frames: np.ndarray, num: int) -> tuple[np.ndarray, np.ndarray]:
    """``num`` frames evenly spaced over ``frames`` (first and last kept; frames repeat when the
    source has fewer). Returns (frames, source indices)."""
    total = int(frames.shape[0])
    idx = np.floor(np.linspace(0.0, total - 1.0, int(num)) + 0.5).astype(np.int64)
    return np.ascontiguousarray(frames[idx]), idx


def resize_frames(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize uint8 T x H x W x 3 frames to ``height`` x ``width`` (bicubic; a no-op when equal)."""
    if frames.shape[1] == height and frames.shape[2] == width:
        return np.ascontiguousarray(frames)
    from PIL import Image
    out = np.empty((frames.shape[0], height, width, 3), np.uint8)
    for i, f in enumerate(frames):
        out[i] = np.asarray(Image.fromarray(f).resize((width, height), Image.BICUBIC))
    return out


def pad_to_aspect(image: np.ndarray, aspect: float) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """Letterbox ``image`` (H x W x 3) with black bars to width/height ratio ``aspect``.

    Returns (padded image, box) where box = (x0, y0, x1, y1) is where the original image lies in
    the padded one, as fractions of the padded width/height: crop the same fractions out of the
    returned frames (:func:`crop_box`) and every pixel is back where it was in ``image``.
    """
    h, w = image.shape[:2]
    if abs(w / h - aspect) < 1e-3:
        return np.array(image), (0.0, 0.0, 1.0, 1.0)
    if w / h < aspect:  # too narrow: bars left and right
        W, H = int(round(h * aspect)), h
    else:  # too wide: bars top and bottom
        W, H = w, int(round(w / aspect))
    x0, y0 = (W - w) // 2, (H - h) // 2
    out = np.zeros((H, W, 3), np.uint8)
    out[y0:y0 + h, x0:x0 + w] = image
    return out, (x0 / W, y0 / H, (x0 + w) / W, (y0 + h) / H)


def crop_box(frames: np.ndarray, box: Sequence[float]) -> np.ndarray:
    """Crop the fractional ``box`` (x0, y0, x1, y1) out of T x H x W x 3 frames."""
    H, W = frames.shape[1:3]
    x0, y0 = int(round(box[0] * W)), int(round(box[1] * H))
    x1, y1 = int(round(box[2] * W)), int(round(box[3] * H))
    return np.ascontiguousarray(frames[:, y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)])


def encode_image(image: np.ndarray, fmt: str = "PNG", **kw: Any) -> bytes:
    """uint8 H x W x 3 RGB -> PNG/JPEG bytes."""
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format=fmt, **kw)
    return buf.getvalue()


def decode_video_bytes(data: bytes, suffix: str = ".mp4") -> tuple[np.ndarray, float | None]:
    """Decode a video file's bytes -> (uint8 T x H x W x 3 RGB frames, fps or None)."""
    from .file_video import read_video
    if not data:
        raise VideoServiceError("the service returned an empty video file")
    with tempfile.TemporaryDirectory(prefix="d2f-video-") as tmp:
        p = Path(tmp) / f"generated{suffix}"
        p.write_bytes(data)
        try:
            return read_video(p)
        except ValueError as e:
            raise VideoServiceError(f"cannot decode the video the service returned ({len(data)} bytes): "
                                    f"{str(e).replace(str(p), 'the download')}") from None
