"""``kling`` video model: Kling AI image-to-video through its REST API.

Protocol (Kling API "General Information" and "Image to Video" reference):

* every request carries ``Authorization: Bearer <JWT>``, a JSON Web Token signed HS256 with the
  secret key, claims ``iss`` = access key, ``exp`` = now + 1800 s, ``nbf`` = now - 5 s. A fresh
  token is made for every request, so long polls never use an expired one.
* ``POST {base_url}/v1/videos/image2video`` with a JSON body ``model_name``, ``image`` (base64
  PNG/JPEG, no ``data:`` prefix), ``image_tail`` (the end frame, optional), ``prompt``,
  ``negative_prompt``, ``duration`` ("5" or "10" seconds), ``mode`` ("std"/"pro"), ``cfg_scale``;
  the reply's ``data.task_id`` names the task.
* mode and end frames: Kling's capability map accepts ``image_tail`` in ``pro`` mode; in ``std``
  mode only the first-generation model (``kling-v1``, :data:`STD_END_FRAME_MODELS`) takes one,
  other models refuse the request. ``mode: auto`` (the default) sends ``pro`` when an end frame is
  given and ``std`` (cheaper) otherwise; an explicit ``mode: std`` with an end frame on a model
  outside that set is refused before anything is sent, with the fix (``mode: pro`` or ``auto``).
* ``GET {base_url}/v1/videos/image2video/{task_id}`` until ``data.task_status`` is ``succeed``
  (the video is at ``data.task_result.videos[0].url``) or ``failed`` (``data.task_status_msg``
  says why); ``submitted`` and ``processing`` mean wait.
* replies are ``{"code": 0, "message": ..., "request_id": ..., "data": ...}``; a non-zero
  ``code`` is an error: 1000-1004 authentication (HTTP 401), 1100-1103 account / balance
  (HTTP 429 or 403, not worth retrying), 1200-1203 bad request, 1300/1301 policy / content
  safety, 1302 rate limit and 1303 concurrency limit (HTTP 429, retried with backoff), 5000-5002
  server errors (HTTP 5xx, retried).

Keys come from ``KLING_ACCESS_KEY`` and ``KLING_SECRET_KEY`` only; they are never logged, never
written to run folders and never appear in error messages. The video URL is downloaded without
the Authorization header (it is usually on a CDN host).

Conversions at the adapter's edge:

* Kling wants images of at least 300 px per side with aspect ratio between 1:2.5 and 2.5:1:
  smaller images are upscaled (aspect kept) before sending; other aspect ratios are refused.
* the service returns ``duration`` x its own frame rate frames (e.g. 5 s x 24 fps = 120) at its
  own resolution (following the input image's aspect ratio). The adapter resamples them to the
  requested ``num_frames`` (evenly spaced in time, first and last frame kept, ``Video.fps`` set
  so the duration is unchanged) and resizes them per axis to the input image's size, so pixel
  (u, v) of every frame is pixel (u, v) of the camera image. ``Video.model`` records both steps.
* Kling has no seed: ``seed`` is accepted and ignored (``Video.seed`` is None).

``d2f_conformance.standins.kling.KlingStandIn`` is a local server speaking the same protocol (JWT
verification included); ``d2f check kling`` runs the conformance checks against it (no credits
are spent) and ``python -m d2f_conformance.standins.kling serve`` starts one for manual
end-to-end runs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import re
import time
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from d2f_core import Manifest, ModelInputSpec, Video, hookimpl
from d2f_core.registry import PluginUnavailableError
from d2f_core.validate import check_image

from ._adapter_util import (TransientError, VideoServiceError, call_with_retries, check_generate_inputs,
                            decode_video_bytes, encode_image, env_secret, http_request, resample_frames,
                            resize_frames, scrub)

__all__ = ["KlingOptions", "KlingVideoModel", "make_jwt", "DEFAULT_BASE_URL", "choose_mode", "STD_END_FRAME_MODELS"]

DEFAULT_BASE_URL = "https://api-singapore.klingai.com"
"""The official endpoint for servers outside China (``https://api.klingai.com`` is the older one)."""
ACCESS_ENV, SECRET_ENV = "KLING_ACCESS_KEY", "KLING_SECRET_KEY"
ENDPOINT = "/v1/videos/image2video"
STD_END_FRAME_MODELS = frozenset({"kling-v1"})
"""Models whose ``std`` mode accepts an end frame (``image_tail``); every other model needs ``pro``."""
MAX_IMAGE_BYTES = 10 * 1024 * 1024
_ACCOUNT_CODES = {1100, 1101, 1102, 1103, 1304}
_RETRY_CODES = {1302, 1303}


# --------------------------------------------------------------------------- JWT (HS256, stdlib)


def _b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def make_jwt(access_key: str, secret_key: str, *, now: float | None = None, ttl_s: int = 1800) -> str:
    """The Kling API token: HS256 JWT with iss = access key, exp = now + 1800, nbf = now - 5."""
    t = int(time.time() if now is None else now)
    header = {"alg": "HS256", "typ": "JWT"}
    payload = {"iss": access_key, "exp": t + int(ttl_s), "nbf": t - 5}
    signing = (_b64url(json.dumps(header, separators=(",", ":")).encode()) + b"."
               + _b64url(json.dumps(payload, separators=(",", ":")).encode()))
    sig = hmac.new(secret_key.encode(), signing, hashlib.sha256).digest()
    return (signing + b"." + _b64url(sig)).decode("ascii")


# --------------------------------------------------------------------------- options


class KlingOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(DEFAULT_BASE_URL, description="API root (scheme://host[:port]); the default is "
                                                        "the official endpoint; point it at a proxy or a "
                                                        "local stand-in for tests")
    model_name: str = Field("kling-v2-1", description="Kling model, e.g. kling-v1-6, kling-v2-1, "
                                                      "kling-v2-1-master, kling-v2-5-turbo")
    mode: Literal["auto", "std", "pro"] = Field("auto", description=(
        "auto: pro when an end frame is given (Kling takes image_tail in pro mode; in std mode only kling-v1 "
        "does), std otherwise; std (faster, cheaper) or pro (higher quality) to force one"))
    duration: int = Field(5, description="seconds of video to generate: 5 or 10 (end frames allow 5 only "
                                         "on most models)")
    cfg_scale: float | None = Field(None, ge=0.0, le=1.0, description="prompt adherence 0-1 (not supported "
                                                                       "by kling-v2.x models); unset = service default")
    negative_prompt: str = Field("", max_length=2500, description="what the video must not show")
    poll_interval_s: float = Field(10.0, gt=0, description="seconds between status polls")
    timeout_s: float = Field(900.0, gt=0, description="overall limit for one generation, seconds")
    request_timeout_s: float = Field(60.0, gt=0, description="limit per HTTP request, seconds")
    retries: int = Field(5, ge=0, description="retries of a request on rate limits (429) and server errors")
    backoff_s: float = Field(2.0, ge=0, description="first retry wait, seconds; doubles per retry (max 60)")
    min_image_side: int = Field(300, ge=1, description="images with a side shorter than this (pixels) are "
                                                       "upscaled before sending (Kling refuses < 300 px)")

    @field_validator("duration")
    @classmethod
    def _duration(cls, v: int) -> int:
        if v not in (5, 10):
            raise ValueError("must be 5 or 10 (seconds)")
        return v

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+", v):
            raise ValueError("must start with http:// or https:// and name a host")
        return v.rstrip("/")


def choose_mode(mode: str, model_name: str, end_frame: bool) -> str:
    """The ``mode`` sent to Kling: ``auto`` -> ``pro`` with an end frame, ``std`` without; an explicit
    ``std`` with an end frame on a model whose std mode refuses ``image_tail`` -> ValueError with the fix."""
    if mode == "auto":
        return "pro" if end_frame else "std"
    if mode == "std" and end_frame and model_name not in STD_END_FRAME_MODELS:
        raise ValueError(f"last_image: Kling's std mode refuses an end frame (image_tail) for {model_name} "
                         f"(only {', '.join(sorted(STD_END_FRAME_MODELS))} take one in std); set "
                         "video.options.mode=pro (or auto, which picks pro for end frames), or drop the end frame")
    return mode


# --------------------------------------------------------------------------- the model


def _missing_keys() -> str | None:
    missing = [n for n in (ACCESS_ENV, SECRET_ENV) if not env_secret(n)[1]]
    if missing:
        return (f"set the environment variable(s) {' and '.join(missing)} to your Kling API access key "
                "and secret key (Kling developer console > API keys)")
    return None


class KlingVideoModel:
    """Kling image-to-video (optionally first-and-last frame) through the REST API."""

    name = "kling"
    kind = "video"
    capabilities = frozenset({"api", "end_frame_conditioning", "model_input"})
    Options = KlingOptions
    extra = "kling"
    requires = ("imageio", "imageio_ffmpeg", "PIL")
    available = staticmethod(_missing_keys)
    description = ("Kling AI image-to-video (first/last frame) through its REST API; keys from "
                   "KLING_ACCESS_KEY / KLING_SECRET_KEY")
    verified = ("local HTTP server speaking the documented API (JWT checked; rate limits, slow and "
                "failed tasks); never against the real service")
    model_input_spec = ModelInputSpec(channel_order="RGB", value_range=(0.0, 255.0), layout="HWC")

    def __init__(self, options: KlingOptions | None = None) -> None:
        self.options = options or KlingOptions()
        why = _missing_keys()
        if why:
            raise PluginUnavailableError(f"video plugin 'kling': {why}")
        self._access = env_secret(ACCESS_ENV)[1]
        self._secret = env_secret(SECRET_ENV)[1]
        self.last_task: dict[str, Any] = {}
        """What the last generate() did (task id, polls, frames received) - for logs and tests."""

    # -- helpers
    def _secrets(self) -> list[str | None]:
        return [self._access, self._secret]

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {make_jwt(self._access, self._secret)}"}

    def _fail(self, text: str) -> VideoServiceError:
        return VideoServiceError(scrub(f"kling: {text}", self._secrets()))

    def _checked(self, resp: Any, what: str) -> Any:
        """The reply's ``data`` for a successful reply; raises (Transient for retryable failures)."""
        body = resp.json()
        code = body.get("code") if isinstance(body, dict) else None
        msg = scrub(str(body.get("message", "")) if isinstance(body, dict) else resp.body[:200], self._secrets())
        rid = body.get("request_id") if isinstance(body, dict) else None
        tag = f"HTTP {resp.status}" + (f", code {code}" if code is not None else "") + (f": {msg}" if msg else "")
        if rid:
            tag += f" (request_id {rid})"
        if resp.status == 429 or code in _RETRY_CODES:
            if code in _ACCOUNT_CODES:
                raise self._fail(f"{what} refused, account problem ({tag}); check the account's balance / "
                                 "resource packs and status in the Kling developer console")
            raise TransientError(f"{what}: rate or concurrency limit ({tag})", resp.retry_after())
        if resp.status >= 500 or (isinstance(code, int) and 5000 <= code < 6000):
            raise TransientError(f"{what}: server error ({tag})", resp.retry_after())
        if resp.status == 401 or (isinstance(code, int) and 1000 <= code <= 1004):
            raise self._fail(f"{what}: authentication failed ({tag}); check {ACCESS_ENV} and {SECRET_ENV} "
                             "and this machine's clock (the token's nbf/exp are time-based)")
        if code in _ACCOUNT_CODES:
            raise self._fail(f"{what} refused, account problem ({tag}); check the Kling developer console")
        if code in (1300, 1301):
            raise self._fail(f"{what} refused by the service's content policy / safety check ({tag}); "
                             "change the prompt or images")
        if resp.status >= 400 or (code not in (0, None)):
            raise self._fail(f"{what} failed ({tag})")
        if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
            head = scrub(resp.body[:200], self._secrets())
            raise self._fail(f"{what}: unexpected reply (no 'data' object): {head!r}")
        return body["data"]

    def _prepare(self, image: np.ndarray, name: str) -> tuple[str, tuple[int, int]]:
        """base64 PNG (JPEG when PNG is over 10 MB) of ``image``, upscaled to the minimum side."""
        h, w = image.shape[:2]
        if not (1 / 2.5 <= w / h <= 2.5):
            raise ValueError(f"{name}: aspect ratio {w}x{h} is outside Kling's 1:2.5 to 2.5:1; crop the image")
        short = min(h, w)
        if short < self.options.min_image_side:
            s = self.options.min_image_side / short
            h, w = int(np.ceil(h * s)), int(np.ceil(w * s))
            image = resize_frames(image[None], h, w)[0]
        data = encode_image(image, "PNG")
        if len(data) > MAX_IMAGE_BYTES:
            data = encode_image(image, "JPEG", quality=95)
        return base64.b64encode(data).decode("ascii"), (h, w)

    def model_input(self, image: np.ndarray) -> np.ndarray:
        """The RGB uint8 H x W x 3 image sent to Kling (upscaled to the minimum side), decoded back
        from the base64 PNG that goes over the wire."""
        check_image(image, "image")
        from PIL import Image
        with Image.open(io.BytesIO(base64.b64decode(self._prepare(image, "image")[0]))) as im:
            return np.asarray(im.convert("RGB"))

    def generate(self, image: np.ndarray, prompt: str, *, last_image: np.ndarray | None = None,
                 num_frames: int = 49, seed: int | None = None) -> Video:
        n = check_generate_inputs(image, prompt, last_image, num_frames)
        o = self.options
        mode = choose_mode(o.mode, o.model_name, last_image is not None)
        img_b64, sent_hw = self._prepare(image, "image")
        body: dict[str, Any] = {"model_name": o.model_name, "image": img_b64, "prompt": prompt,
                                "duration": str(o.duration), "mode": mode}
        if o.negative_prompt:
            body["negative_prompt"] = o.negative_prompt
        if o.cfg_scale is not None:
            body["cfg_scale"] = o.cfg_scale
        if last_image is not None:
            body["image_tail"] = self._prepare(last_image, "last_image")[0]

        deadline = time.monotonic() + o.timeout_s
        retry = dict(retries=o.retries, backoff_s=o.backoff_s, deadline=deadline)
        url = f"{o.base_url}{ENDPOINT}"

        def create() -> Any:
            return self._checked(http_request("POST", url, headers=self._auth(), body=body,
                                              timeout=o.request_timeout_s), "creating the task")

        data = call_with_retries(create, what="kling: creating the task", **retry)
        task_id = data.get("task_id")
        if not isinstance(task_id, str) or not task_id:
            raise self._fail(f"the reply to creating the task holds no data.task_id: {scrub(data, self._secrets())}")
        self.last_task = {"task_id": task_id, "polls": 0, "statuses": []}

        def poll() -> Any:
            return self._checked(http_request("GET", f"{url}/{task_id}", headers=self._auth(),
                                              timeout=o.request_timeout_s), f"polling task {task_id}")

        while True:
            if time.monotonic() + o.poll_interval_s > deadline:
                raise self._fail(f"task {task_id} not finished after {o.timeout_s:g} s (timeout_s; last status "
                                 f"{(self.last_task['statuses'] or ['none'])[-1]!r}); raise timeout_s or try later")
            time.sleep(o.poll_interval_s)
            data = call_with_retries(poll, what=f"kling: polling task {task_id}", **retry)
            status = data.get("task_status")
            self.last_task["polls"] += 1
            self.last_task["statuses"].append(status)
            if status == "succeed":
                break
            if status == "failed":
                why = scrub(data.get("task_status_msg") or "no reason given", self._secrets())
                raise self._fail(f"task {task_id} failed: {why}")
            if status not in ("submitted", "processing"):
                raise self._fail(f"task {task_id} has unknown status {status!r} (expected submitted, "
                                 "processing, succeed or failed)")
        try:
            video_url = data["task_result"]["videos"][0]["url"]
        except (KeyError, IndexError, TypeError):
            raise self._fail(f"task {task_id} succeeded without data.task_result.videos[0].url") from None

        def download() -> bytes:
            r = http_request("GET", video_url, timeout=max(o.request_timeout_s, 120.0))
            if r.status == 429 or r.status >= 500:
                raise TransientError(f"downloading the video: HTTP {r.status}", r.retry_after())
            if r.status != 200:
                raise self._fail(f"downloading the video of task {task_id} failed: HTTP {r.status}")
            return r.body

        raw = call_with_retries(download, what="kling: downloading the video", **retry)
        frames, fps = decode_video_bytes(raw, ".mp4")
        total, (h, w) = frames.shape[0], frames.shape[1:3]
        fps = float(fps or total / o.duration)
        src_duration = (total - 1) / fps if total > 1 else float(o.duration)
        frames, _ = resample_frames(frames, n)
        out_fps = (n - 1) / src_duration if src_duration > 0 else fps
        H0, W0 = image.shape[:2]
        frames = resize_frames(frames, H0, W0)
        self.last_task.update(received_frames=total, received_fps=fps, received_size=(h, w), sent_size=sent_hw)
        model = (f"kling:{o.model_name} (mode {mode}; task {task_id}; {total} frames at {fps:g} fps resampled to {n}; "
                 f"{w}x{h} resized to {W0}x{H0}; no seed support)")
        return Video(frames=frames, fps=out_fps, model=model, prompt=prompt, seed=None)


@hookimpl
def d2f_register(register):
    register(Manifest.of(KlingVideoModel))
