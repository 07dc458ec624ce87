"""``veo3`` video model: Google Veo 3 image-to-video through the google-genai client.

Calls ``client.models.generate_videos(model=..., source=GenerateVideosSource(prompt, image),
config=GenerateVideosConfig(negative_prompt, last_frame, number_of_videos=1, duration_seconds,
aspect_ratio, resolution, seed, generate_audio, person_generation))``, polls
``client.operations.get(operation)`` until it is done, and decodes the returned video.

Backend. google-genai 3.4 (the version this was written and tested with) serves
``generate_videos`` only in its Gemini Enterprise Agent Platform (Vertex AI) mode; in Gemini
Developer API mode it raises ValueError before sending anything. The
adapter therefore builds ``genai.Client(vertexai=True, api_key=KEY, http_options=HttpOptions(
base_url=options.base_url, timeout=...))``: the key must be valid for Veo on that platform
(an "express mode" API key). On the wire (as google-genai 3.4 sends it, and as the Vertex AI
REST reference documents it):

* ``POST {base}/v1beta1/publishers/google/models/{model}:predictLongRunning`` with header
  ``x-goog-api-key`` and body ``{"instances": [{"prompt", "image": {"bytesBase64Encoded",
  "mimeType"}, "lastFrame": {...}}], "parameters": {"sampleCount", "durationSeconds", "seed",
  "negativePrompt", "aspectRatio", "resolution", "generateAudio", "personGeneration"}}``; the
  reply is a long-running operation ``{"name": ".../operations/ID"}``.
* ``POST {base}/v1beta1/{model resource}:fetchPredictOperation`` with ``{"operationName": name}``
  until ``"done": true``; then ``response.videos[].bytesBase64Encoded`` (or ``gcsUri``), or
  ``response.raiMediaFilteredCount`` / ``raiMediaFilteredReasons`` when the safety filter removed
  the videos, or ``error: {code, message}``.

The key is read from ``GEMINI_API_KEY`` (or ``GOOGLE_API_KEY``), passed to the client only, never
logged, written or shown in errors. Retries with exponential backoff on HTTP 429 and 5xx and on
connection failures; after the retries a 429 is reported as a quota error.

Conversions at the adapter's edge: Veo makes 16:9 or 9:16 videos (``aspect_ratio``, "auto" picks
the one closer to the image). The adapter letterboxes the image (and ``last_image``) to that
aspect ratio with black bars itself, so it knows where the image lies in the video, and on the
way back crops that box out of every frame and resizes it to the input image's size: pixel
(u, v) of every frame is pixel (u, v) of the camera image. The returned frames (duration x 24
fps) are resampled to ``num_frames`` (evenly spaced, first and last kept; ``Video.fps`` keeps the
duration). ``Video.model`` records all of it. ``seed`` is sent to the service (Veo's seed makes
results repeatable "as far as possible"; the adapter declares no ``deterministic`` capability).

:class:`VeoStandIn` is a local server speaking this protocol; ``d2f check veo3`` runs the
conformance checks against it (no credits are spent).
"""

from __future__ import annotations

import base64
import io
import json
import re
import time
import urllib.parse
import uuid
from typing import Any, Literal, Mapping

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from d2f_core import Manifest, ModelInputSpec, Video, hookimpl
from d2f_core.registry import PluginUnavailableError
from d2f_core.validate import check_image

from ._adapter_util import (StandInServer, TransientError, VideoServiceError, call_with_retries,
                            check_num_frames, crop_box, decode_video_bytes, encode_image, encode_mp4,
                            env_secret, http_request, pad_to_aspect, resample_frames, resize_frames,
                            scrub, synthetic_video)

__all__ = ["VeoOptions", "VeoVideoModel", "VeoStandIn", "KEY_ENVS", "DEFAULT_MODEL"]

KEY_ENVS = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
DEFAULT_MODEL = "veo-3.1-generate-001"
"""A Veo 3 model that accepts a last frame (veo-3.0-generate-001 does not and is being retired)."""


class VeoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(DEFAULT_MODEL, description="Veo model id, e.g. veo-3.1-generate-001, "
                                                  "veo-3.1-fast-generate-001, veo-3.0-generate-001 (no end frame)")
    base_url: str | None = Field(None, description="API root handed to google-genai's HttpOptions (a proxy, a "
                                                   "regional endpoint, a local stand-in); unset = google-genai's "
                                                   "default")
    duration_s: Literal[4, 6, 8] = Field(8, description="seconds of video to generate (Veo 3: 4, 6 or 8)")
    resolution: Literal["720p", "1080p"] = Field("720p", description="output resolution")
    aspect_ratio: Literal["auto", "16:9", "9:16"] = Field("auto", description="video aspect ratio; auto = "
                                                                              "the one closer to the image's")
    negative_prompt: str = Field("", description="what the video must not show")
    generate_audio: bool = Field(False, description="ask Veo 3 for an audio track (ignored here; costs more)")
    person_generation: Literal["allow_adult", "dont_allow", "allow_all"] = Field(
        "allow_adult", description="people in the video (the prompts show a hand: keep allow_adult)")
    poll_interval_s: float = Field(10.0, gt=0, description="seconds between operation polls")
    timeout_s: float = Field(900.0, gt=0, description="overall limit for one generation, seconds")
    request_timeout_s: float = Field(120.0, gt=0, description="limit per HTTP request, seconds")
    retries: int = Field(5, ge=0, description="retries of a request on 429 (quota/rate) and 5xx")
    backoff_s: float = Field(2.0, ge=0, description="first retry wait, seconds; doubles per retry (max 60)")

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^/\s]+", v):
            raise ValueError("must start with http:// or https:// and name a host")
        return v.rstrip("/") if v else v


def _missing_key() -> str | None:
    if env_secret(*KEY_ENVS)[1]:
        return None
    return ("set the environment variable GEMINI_API_KEY (or GOOGLE_API_KEY) to an API key valid for Veo "
            "on Google's Gemini Enterprise Agent Platform / Vertex AI (google-genai 3.4 serves Veo only there)")


def _require_genai() -> tuple[Any, Any, Any]:
    try:
        from google import genai
        from google.genai import errors, types
    except ImportError:
        raise PluginUnavailableError("video plugin 'veo3' needs google-genai (not installed): "
                                     "pip install 'dream2flow[veo]'") from None
    return genai, types, errors


class VeoVideoModel:
    """Veo 3 image-to-video (first and optional last frame) through google-genai."""

    name = "veo3"
    capabilities = frozenset({"api", "end_frame_conditioning", "model_input"})
    model_input_spec = ModelInputSpec(channel_order="RGB", value_range=(0.0, 255.0), layout="HWC")

    def __init__(self, options: VeoOptions | None = None) -> None:
        self.options = o = options or VeoOptions()
        why = _missing_key()
        if why:
            raise PluginUnavailableError(f"video plugin 'veo3': {why}")
        self._key_env, self._key = env_secret(*KEY_ENVS)
        self._genai, self._types, self._errors = _require_genai()
        http = self._types.HttpOptions(base_url=o.base_url, timeout=int(o.request_timeout_s * 1000))
        try:
            self.client = self._genai.Client(vertexai=True, api_key=self._key, http_options=http)
        except Exception as e:  # noqa: BLE001 - a client that cannot be built is a one-line error
            raise VideoServiceError(scrub(f"veo3: cannot create the google-genai client: {type(e).__name__}: "
                                          f"{e}", [self._key])) from None
        self.last_operation: dict[str, Any] = {}
        """What the last generate() did (operation name, polls, frames received), for logs and tests."""

    # -- conversions
    def _aspect(self, image: np.ndarray) -> tuple[str, float]:
        a = self.options.aspect_ratio
        if a == "auto":
            h, w = image.shape[:2]
            a = "16:9" if w >= h else "9:16"
        num, den = (int(x) for x in a.split(":"))
        return a, num / den

    def model_input(self, image: np.ndarray) -> np.ndarray:
        """The RGB uint8 H x W x 3 image sent to Veo (letterboxed to the video's aspect ratio),
        decoded back from the PNG bytes that go over the wire."""
        check_image(image, "image")
        padded, _ = pad_to_aspect(image, self._aspect(image)[1])
        from PIL import Image
        with Image.open(io.BytesIO(encode_image(padded, "PNG"))) as im:
            return np.asarray(im.convert("RGB"))

    def _image(self, image: np.ndarray, aspect: float) -> tuple[Any, tuple[float, ...]]:
        padded, box = pad_to_aspect(image, aspect)
        return self._types.Image(image_bytes=encode_image(padded, "PNG"), mime_type="image/png"), box

    # -- errors
    def _fail(self, text: str) -> VideoServiceError:
        return VideoServiceError(scrub(f"veo3: {text}", [self._key]))

    def _api_call(self, fn: Any, what: str) -> Any:
        """Run one google-genai call; map its errors to TransientError (retry) or VideoServiceError."""
        try:
            return fn()
        except self._errors.APIError as e:
            code, status = getattr(e, "code", None), getattr(e, "status", None)
            msg = scrub(getattr(e, "message", None) or str(e), [self._key])
            tag = f"HTTP {code} {status or ''}".strip() + (f": {msg}" if msg else "")
            if code == 429:
                raise TransientError(f"quota or rate limit exceeded ({tag}); check the project's Veo quota "
                                     "and billing") from None
            if isinstance(code, int) and code >= 500:
                raise TransientError(f"server error ({tag})") from None
            if code in (401, 403) or (code == 400 and "api key" in msg.lower()):
                raise self._fail(f"{what}: the service refused the API key ({tag}); check {self._key_env} "
                                 "(a key valid for Veo on the Enterprise Agent Platform / Vertex AI)") from None
            raise self._fail(f"{what} failed ({tag})") from None
        except ValueError as e:  # google-genai refuses before sending (unsupported mode or argument)
            raise self._fail(f"{what}: google-genai refused the call: {scrub(e, [self._key])}") from None
        except Exception as e:  # noqa: BLE001 - httpx network errors and the like
            name = type(e).__name__
            if any(k in name for k in ("Connect", "Network", "RemoteProtocol", "ReadError", "Pool")):
                raise TransientError(f"network error ({name}: {scrub(e, [self._key])})") from None
            if "Timeout" in name:
                raise self._fail(f"{what}: no reply within request_timeout_s={self.options.request_timeout_s:g} s "
                                 f"({name}); raise request_timeout_s") from None
            raise self._fail(f"{what}: {name}: {scrub(e, [self._key])}") from None

    # -- the call
    def generate(self, image: np.ndarray, prompt: str, *, last_image: np.ndarray | None = None,
                 num_frames: int = 49, seed: int | None = None) -> Video:
        check_image(image, "image")
        if last_image is not None:
            check_image(last_image, "last_image")
            if last_image.shape != image.shape:
                raise ValueError(f"last_image: must be the size of image {image.shape[:2]}, got "
                                 f"{last_image.shape[:2]}")
        if not isinstance(prompt, str):
            raise ValueError(f"prompt: expected a string, got {type(prompt).__name__}")
        n = check_num_frames(num_frames)
        if seed is not None and not (0 <= int(seed) < 2 ** 32):
            raise ValueError(f"seed: Veo takes a seed in [0, 2**32), got {seed}")
        o, types = self.options, self._types
        aspect_name, aspect = self._aspect(image)
        first, box = self._image(image, aspect)
        cfg: dict[str, Any] = dict(number_of_videos=1, duration_seconds=o.duration_s, aspect_ratio=aspect_name,
                                   resolution=o.resolution, generate_audio=o.generate_audio,
                                   person_generation=o.person_generation)
        if o.negative_prompt:
            cfg["negative_prompt"] = o.negative_prompt
        if seed is not None:
            cfg["seed"] = int(seed)
        if last_image is not None:
            cfg["last_frame"] = self._image(last_image, aspect)[0]
        config = types.GenerateVideosConfig(**cfg)
        if hasattr(types, "GenerateVideosSource"):
            call = dict(source=types.GenerateVideosSource(prompt=prompt, image=first))
        else:  # older google-genai
            call = dict(prompt=prompt, image=first)

        deadline = time.monotonic() + o.timeout_s
        retry = dict(retries=o.retries, backoff_s=o.backoff_s, deadline=deadline)
        op = call_with_retries(
            lambda: self._api_call(lambda: self.client.models.generate_videos(model=o.model, config=config, **call),
                                   "starting the generation"),
            what="veo3: starting the generation", **retry)
        self.last_operation = {"name": getattr(op, "name", None), "polls": 0}
        while not getattr(op, "done", False):
            if time.monotonic() + o.poll_interval_s > deadline:
                raise self._fail(f"operation {op.name} not done after {o.timeout_s:g} s (timeout_s); raise "
                                 "timeout_s or try later")
            time.sleep(o.poll_interval_s)
            op = call_with_retries(lambda: self._api_call(lambda: self.client.operations.get(op),
                                                          "polling the operation"),
                                   what="veo3: polling the operation", **retry)
            self.last_operation["polls"] += 1
        raw = self._video_bytes(op, retry)
        frames, fps = decode_video_bytes(raw, ".mp4")
        total, (h, w) = frames.shape[0], frames.shape[1:3]
        fps = float(fps or total / o.duration_s)
        src_duration = (total - 1) / fps if total > 1 else float(o.duration_s)
        frames = crop_box(frames, box)
        ch, cw = frames.shape[1:3]
        frames, _ = resample_frames(frames, n)
        H0, W0 = image.shape[:2]
        frames = resize_frames(frames, H0, W0)
        self.last_operation.update(received_frames=total, received_fps=fps, received_size=(h, w), box=box)
        padded = box != (0.0, 0.0, 1.0, 1.0)
        model = (f"veo3:{o.model} ({total} frames at {fps:g} fps resampled to {n}; {w}x{h} {aspect_name}"
                 + (f", letterbox cropped to {cw}x{ch}" if padded else "") + f", resized to {W0}x{H0})")
        return Video(frames=frames, fps=(n - 1) / src_duration if src_duration > 0 else fps, model=model,
                     prompt=prompt, seed=None if seed is None else int(seed))

    def _video_bytes(self, op: Any, retry: Mapping[str, Any]) -> bytes:
        err = getattr(op, "error", None)
        if err:
            code = err.get("code") if isinstance(err, dict) else None
            msg = scrub((err.get("message") if isinstance(err, dict) else err) or "no message", [self._key])
            if code in (8, 429) or "RESOURCE_EXHAUSTED" in str(msg).upper() or "quota" in str(msg).lower():
                raise self._fail(f"quota exceeded (operation error {code}: {msg}); check the project's Veo "
                                 "quota and billing, or try later")
            raise self._fail(f"the generation failed (operation error {code}: {msg})")
        res = getattr(op, "result", None) or getattr(op, "response", None)
        videos = list(getattr(res, "generated_videos", None) or []) if res is not None else []
        if not videos:
            filtered = getattr(res, "rai_media_filtered_count", None) if res is not None else None
            reasons = getattr(res, "rai_media_filtered_reasons", None) if res is not None else None
            if filtered or reasons:
                raise self._fail(f"the safety filter removed the video ({filtered or 0} filtered; reasons: "
                                 f"{'; '.join(map(str, reasons or [])) or 'none given'}); change the prompt or "
                                 "the images")
            raise self._fail("the operation finished without a video and without a reason")
        video = getattr(videos[0], "video", None)
        data = getattr(video, "video_bytes", None)
        if data:
            return bytes(data)
        uri = getattr(video, "uri", None)
        if not uri:
            raise self._fail("the returned video has neither bytes nor a uri")
        if not uri.startswith(("http://", "https://")):
            raise self._fail(f"the video was written to {uri}; this adapter reads videos returned inline "
                             "(do not set an output storage uri)")
        headers = {}
        api_host = urllib.parse.urlsplit(self.options.base_url or "https://aiplatform.googleapis.com").netloc
        if urllib.parse.urlsplit(uri).netloc == api_host:  # never send the key to another host
            headers["x-goog-api-key"] = self._key

        def download() -> bytes:
            r = http_request("GET", uri, headers=headers, timeout=max(self.options.request_timeout_s, 120.0))
            if r.status == 429 or r.status >= 500:
                raise TransientError(f"downloading the video: HTTP {r.status}", r.retry_after())
            if r.status != 200:
                raise self._fail(f"downloading the video failed: HTTP {r.status}")
            return r.body

        return call_with_retries(download, what="veo3: downloading the video", **retry)


def _factory(options: VeoOptions | None, ctx: Any = None) -> VeoVideoModel:
    return VeoVideoModel(options or VeoOptions())


# --------------------------------------------------------------------------- the stand-in server


_PREDICT = re.compile(r"^/(?P<ver>v1|v1beta1)/(?P<res>(?:projects/[^/]+/locations/[^/]+/)?publishers/google/"
                      r"models/(?P<model>[^/:]+)):(?P<verb>predictLongRunning|fetchPredictOperation)$")


class VeoStandIn(StandInServer):
    """A local server speaking Veo's long-running-operation protocol (Vertex AI REST), for checks
    and tests.

    It checks ``x-goog-api-key`` and the request body as the reference documents it and
    "generates" the (letterboxed) first image drifting right, cross-fading into ``lastFrame`` when
    given: ``durationSeconds`` x ``fps`` frames of ``height`` pixels in the requested aspect
    ratio, returned inline as base64 mp4 (``videos[].bytesBase64Encoded``) or, with
    ``serve_uri=True``, as a ``gcsUri``-style http URL served from ``/media/``.

    Knobs: ``polls_before_done``, ``quota_first`` (predict requests answered 429
    RESOURCE_EXHAUSTED first), ``server_errors_first`` (500s first), ``rai_filtered`` (the done
    operation has no videos and ``raiMediaFilteredReasons``), ``operation_error`` (the done
    operation carries ``error``). Received requests are in :attr:`requests`.
    """

    def __init__(self, api_key: str, *, polls_before_done: int = 1, fps: float = 8.0, height: int = 72,
                 shift_px: float = 6.0, quota_first: int = 0, server_errors_first: int = 0,
                 rai_filtered: list[str] | None = None, operation_error: dict[str, Any] | None = None,
                 serve_uri: bool = False, **kw: Any) -> None:
        super().__init__(**kw)
        self.api_key, self.polls_before_done, self.fps, self.height = api_key, polls_before_done, fps, height
        self.shift_px, self.quota_first, self.server_errors_first = shift_px, quota_first, server_errors_first
        self.rai_filtered, self.operation_error, self.serve_uri = rai_filtered, operation_error, serve_uri
        self.operations: dict[str, dict[str, Any]] = {}
        self.media: dict[str, bytes] = {}

    def _err(self, code: int, status: str, message: str):
        return self.json_reply(code, {"error": {"code": code, "message": message, "status": status}})

    @staticmethod
    def _image(obj: Any, field: str) -> tuple[np.ndarray | None, str]:
        if not isinstance(obj, dict) or not isinstance(obj.get("bytesBase64Encoded"), str):
            return None, f"{field}.bytesBase64Encoded must be a base64 string"
        if obj.get("mimeType") not in ("image/png", "image/jpeg"):
            return None, f"{field}.mimeType must be image/png or image/jpeg"
        try:
            from PIL import Image
            with Image.open(io.BytesIO(base64.b64decode(obj["bytesBase64Encoded"], validate=True))) as im:
                return np.asarray(im.convert("RGB")), ""
        except Exception:  # noqa: BLE001
            return None, f"{field} is not a readable image"

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes):
        path = path.split("?", 1)[0]
        if method == "GET" and path.startswith("/media/"):
            data = self.media.get(path[len("/media/"):])
            return (200, {"Content-Type": "video/mp4"}, data) if data else self._err(404, "NOT_FOUND", "no such file")
        if headers.get("x-goog-api-key") != self.api_key:
            return self._err(401 if not headers.get("x-goog-api-key") else 400, "UNAUTHENTICATED"
                             if not headers.get("x-goog-api-key") else "INVALID_ARGUMENT", "API key not valid. "
                             "Please pass a valid API key.")
        m = _PREDICT.match(path)
        if method != "POST" or m is None:
            return self._err(404, "NOT_FOUND", f"no such method {method} {path}")
        try:
            req = json.loads(body) if body else None
        except ValueError:
            return self._err(400, "INVALID_ARGUMENT", "body is not JSON")
        if m["verb"] == "predictLongRunning":
            return self._predict(m["model"], m["res"], req)
        return self._fetch(req)

    def _predict(self, model: str, resource: str, req: Any):
        if self.quota_first > 0:
            self.quota_first -= 1
            return self._err(429, "RESOURCE_EXHAUSTED", "Quota exceeded for aiplatform.googleapis.com/"
                                                         "online_prediction_requests_per_base_model")
        if self.server_errors_first > 0:
            self.server_errors_first -= 1
            return self._err(500, "INTERNAL", "Internal error encountered.")
        if not isinstance(req, dict) or not isinstance(req.get("instances"), list) or len(req["instances"]) != 1:
            return self._err(400, "INVALID_ARGUMENT", "instances must hold exactly one instance")
        inst, params = req["instances"][0], req.get("parameters") or {}
        if not isinstance(inst.get("prompt"), str):
            return self._err(400, "INVALID_ARGUMENT", "instances[0].prompt must be a string")
        first, why = self._image(inst.get("image"), "instances[0].image")
        if first is None:
            return self._err(400, "INVALID_ARGUMENT", why)
        last = None
        if "lastFrame" in inst:
            last, why = self._image(inst["lastFrame"], "instances[0].lastFrame")
            if last is None:
                return self._err(400, "INVALID_ARGUMENT", why)
            if last.shape != first.shape:
                return self._err(400, "INVALID_ARGUMENT", "lastFrame must have the size of image")
        dur = params.get("durationSeconds", 8)
        if dur not in (4, 6, 8):
            return self._err(400, "INVALID_ARGUMENT", "parameters.durationSeconds must be 4, 6 or 8")
        aspect = params.get("aspectRatio", "16:9")
        if aspect not in ("16:9", "9:16"):
            return self._err(400, "INVALID_ARGUMENT", "parameters.aspectRatio must be 16:9 or 9:16")
        if params.get("sampleCount", 1) not in (1, 2, 3, 4):
            return self._err(400, "INVALID_ARGUMENT", "parameters.sampleCount must be 1-4")
        if "seed" in params and not (isinstance(params["seed"], int) and 0 <= params["seed"] < 2 ** 32):
            return self._err(400, "INVALID_ARGUMENT", "parameters.seed must be a uint32")
        num, den = (int(x) for x in aspect.split(":"))
        if abs(first.shape[1] / first.shape[0] - num / den) > 0.02:
            return self._err(400, "INVALID_ARGUMENT", f"image aspect ratio {first.shape[1]}x{first.shape[0]} "
                                                      f"does not match aspectRatio {aspect}")
        base = resource if resource.startswith("projects/") else f"projects/stand-in/locations/us-central1/{resource}"
        name = f"{base}/operations/{uuid.uuid4()}"
        with self.lock:
            self.operations[name] = {"request": req, "first": first, "last": last, "polls": 0,
                                     "duration": dur, "aspect": num / den}
        return self.json_reply(200, {"name": name})

    def _fetch(self, req: Any):
        name = req.get("operationName") if isinstance(req, dict) else None
        op = self.operations.get(name or "")
        if op is None:
            return self._err(404, "NOT_FOUND", f"operation {name!r} not found")
        with self.lock:
            op["polls"] += 1
        if op["polls"] <= self.polls_before_done:
            return self.json_reply(200, {"name": name, "done": False})
        if self.operation_error is not None:
            return self.json_reply(200, {"name": name, "done": True, "error": self.operation_error})
        resp: dict[str, Any] = {"@type": "type.googleapis.com/cloud.ai.large_models.vision.GenerateVideoResponse"}
        if self.rai_filtered is not None:
            resp.update(raiMediaFilteredCount=1, raiMediaFilteredReasons=list(self.rai_filtered), videos=[])
            return self.json_reply(200, {"name": name, "done": True, "response": resp})
        H = self.height
        W = int(round(H * op["aspect"] / 2)) * 2
        frames = synthetic_video(op["first"], op["last"], int(round(op["duration"] * self.fps)), H, W, self.shift_px)
        data = encode_mp4(frames, self.fps)
        if self.serve_uri:
            key = f"{uuid.uuid4().hex}.mp4"
            self.media[key] = data
            video = {"gcsUri": f"{self.url}/media/{key}", "mimeType": "video/mp4"}
        else:
            video = {"bytesBase64Encoded": base64.b64encode(data).decode("ascii"), "mimeType": "video/mp4"}
        resp.update(raiMediaFilteredCount=0, videos=[video])
        return self.json_reply(200, {"name": name, "done": True, "response": resp})


def _check_options(env: Any) -> dict[str, Any]:
    """Start a stand-in speaking Veo's protocol for ``d2f check`` (no credits are spent); it
    accepts the key the adapter reads and stops when the check's temporary folder is removed."""
    srv = VeoStandIn(env_secret(*KEY_ENVS)[1] or "", watch=env.tmp_dir, max_life_s=600, idle_s=120).start()
    return {"base_url": srv.url, "poll_interval_s": 0.02, "backoff_s": 0.01, "timeout_s": 60.0}


@hookimpl
def d2f_register(register):
    register(Manifest(
        name="veo3", kind="video", factory=_factory, options_model=VeoOptions,
        capabilities=VeoVideoModel.capabilities, extra="veo",
        requires=("google.genai", "imageio", "imageio_ffmpeg", "PIL"), available=_missing_key,
        description="Google Veo 3 image-to-video (first/last frame) through google-genai; key from "
                    "GEMINI_API_KEY",
        verified="local HTTP server speaking the documented API as google-genai 3.4 calls it (quota, "
                 "safety filter, slow operations); never against the real service",
        check_options=_check_options))
