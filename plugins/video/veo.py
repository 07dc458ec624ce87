"""``veo3`` video model: Google Veo 3 image-to-video through the google-genai client.

Calls ``client.models.generate_videos(model=..., source=GenerateVideosSource(prompt, image),
config=GenerateVideosConfig(negative_prompt, last_frame, number_of_videos=1, duration_seconds,
aspect_ratio, resolution, person_generation))`` (``source`` bundles the ``prompt`` and ``image``
arguments; google-genai versions without it get ``prompt=..., image=...``), polls
``client.operations.get(operation)`` until ``operation.done``, downloads the video with
``client.files.download(file=video)`` and decodes its frames.

Two backends, chosen by the ``vertexai`` option:

* **Gemini Developer API** (default; the key from Google AI Studio in ``GEMINI_API_KEY``):
  ``genai.Client(api_key=KEY, http_options=HttpOptions(base_url=options.base_url, timeout=...))``.
  google-genai 3.0 removed Veo from this mode (``generate_videos`` raises before sending), so it
  needs google-genai >= 1.42 (the first that sends ``lastFrame`` here) and < 3; the ``veo`` extra
  pins that. With google-genai 3.x the adapter stops with one line saying so. On the wire (as
  google-genai 2.34 sends it, and as the Gemini API's video generation REST docs show it):

  - ``POST {base}/v1beta/models/{model}:predictLongRunning``, header ``x-goog-api-key``, body
    ``{"instances": [{"prompt", "image": {"bytesBase64Encoded", "mimeType"}, "lastFrame": {...}}],
    "parameters": {"sampleCount", "durationSeconds", "aspectRatio", "resolution",
    "personGeneration", "negativePrompt"}}``; the reply is an operation
    ``{"name": "models/{model}/operations/{id}"}``.
  - ``GET {base}/v1beta/{operation name}`` until ``"done": true``; then
    ``response.generateVideoResponse.generatedSamples[0].video.uri`` (a Files API URL,
    ``.../v1beta/files/{id}:download?alt=media``), or ``generateVideoResponse.raiMediaFilteredCount``
    / ``raiMediaFilteredReasons`` when the safety filter removed the video, or ``error``.
  - ``GET {base}/v1beta/files/{id}:download?alt=media`` with the key header (redirects followed):
    the mp4. google-genai sends this to ``base_url`` whatever host the URL names, so a proxy or
    stand-in also serves the download. A video URL that is not a Files API URL is fetched
    without the key.

  This mode sends no seed (google-genai refuses one here) and no ``generate_audio``.

* **Vertex AI** (``vertexai: true``; Google's "Gemini Enterprise Agent Platform"): needs
  google-genai and an API key valid for Veo on Vertex AI ("express mode"); works with
  google-genai 3.x too. ``genai.Client(vertexai=True, api_key=KEY, http_options=...)``; on the
  wire ``POST {base}/v1beta1/publishers/google/models/{model}:predictLongRunning`` (same
  instances; parameters add ``seed`` and ``generateAudio``), polled with ``POST {base}/v1beta1/
  {model resource}:fetchPredictOperation`` ``{"operationName": name}``; the video comes back
  inline (``response.videos[].bytesBase64Encoded``).

The key is read from ``GEMINI_API_KEY`` (or ``GOOGLE_API_KEY``), handed to the client only, never
logged, written or shown in errors. Retries with exponential backoff on HTTP 429 and 5xx, on
connection failures, and on per-request timeouts of polls and downloads (a timed-out request that
starts a generation is not repeated: it may have started a billed one); after the retries a 429 is
reported as a quota error. ``timeout_s`` bounds a whole generation.

Conversions at the adapter's edge: Veo makes 16:9 or 9:16 videos (``aspect_ratio``, "auto" picks
the one closer to the image). The adapter letterboxes the image (and ``last_image``) to that
aspect ratio with black bars itself, so it knows where the image lies in the video, and on the
way back crops that box out of every frame and resizes it to the input image's size: pixel
(u, v) of every frame is pixel (u, v) of the camera image. The returned frames (duration x 24
fps) are resampled to ``num_frames`` (evenly spaced, first and last kept; ``Video.fps`` keeps the
duration). ``Video.model`` records all of it. In Vertex mode ``seed`` is sent (Veo makes results
repeatable only "as far as possible"; the adapter declares no ``deterministic`` capability).

:class:`VeoStandIn` is a local server speaking both protocols; ``d2f check veo3`` runs the
conformance checks against it in the default (Gemini API) mode, spending no credits.
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
                            check_generate_inputs, crop_box, decode_video_bytes, encode_image, encode_mp4,
                            env_secret, http_request, pad_to_aspect, resample_frames, resize_frames,
                            scrub, synthetic_video)

__all__ = ["VeoOptions", "VeoVideoModel", "VeoStandIn", "KEY_ENVS", "DEFAULT_MODEL", "DEFAULT_VERTEX_MODEL",
           "MIN_GENAI_DEVELOPER"]

KEY_ENVS = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
DEFAULT_MODEL = "veo-3.1-generate-preview"
"""Gemini API Veo 3 model that takes a last frame (veo-3.0-generate-001 does not)."""
DEFAULT_VERTEX_MODEL = "veo-3.1-generate-001"
"""The same model's id on Vertex AI."""
MIN_GENAI_DEVELOPER = (1, 42)
"""First google-genai that sends ``lastFrame`` (and ``resolution``, since 1.33) in Gemini API mode."""

_FILES_URI = re.compile(r"(?:^|/)files/([A-Za-z0-9_-]+)(?::download)?(?:[?#]|$)")


class VeoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vertexai: bool = Field(False, description="use google-genai's Vertex AI (Gemini Enterprise Agent Platform) mode "
                                              "instead of the Gemini Developer API: needs a key valid for Veo on "
                                              "Vertex AI; works with google-genai 3.x")
    model: str | None = Field(None, description=f"Veo model id; unset = {DEFAULT_MODEL} (Gemini API) or "
                                                f"{DEFAULT_VERTEX_MODEL} (Vertex AI). e.g. "
                                                "veo-3.1-fast-generate-preview; veo-3.0-generate-001 takes no end "
                                                "frame")
    base_url: str | None = Field(None, description="API root handed to google-genai's HttpOptions (a proxy, a "
                                                   "regional endpoint, a local stand-in); unset = google-genai's "
                                                   "default")
    duration_s: Literal[4, 6, 8] = Field(8, description="seconds of video to generate (Veo 3: 4, 6 or 8)")
    resolution: Literal["720p", "1080p"] = Field("720p", description="output resolution")
    aspect_ratio: Literal["auto", "16:9", "9:16"] = Field("auto", description="video aspect ratio; auto = "
                                                                              "the one closer to the image's")
    negative_prompt: str = Field("", description="what the video must not show")
    generate_audio: bool = Field(False, description="Vertex AI mode only: ask Veo 3 for an audio track (the "
                                                    "audio is dropped here; costs more). Not sent to the Gemini "
                                                    "API, which decides itself")
    person_generation: Literal["allow_adult", "dont_allow", "allow_all"] = Field(
        "allow_adult", description="people in the video (the prompts show a hand: keep allow_adult, the only "
                                   "value the Gemini API takes with an input image)")
    poll_interval_s: float = Field(10.0, gt=0, description="seconds between operation polls")
    timeout_s: float = Field(900.0, gt=0, description="overall limit for one generation, seconds")
    request_timeout_s: float = Field(120.0, gt=0, description="limit per HTTP request, seconds")
    retries: int = Field(5, ge=0, description="retries of a request on 429 (quota/rate), 5xx, network errors")
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
    return ("set the environment variable GEMINI_API_KEY (or GOOGLE_API_KEY) to a Gemini API key "
            "(https://aistudio.google.com/apikey); with veo3.options.vertexai=true, to a key valid for Veo on "
            "Vertex AI")


def _require_genai() -> tuple[Any, Any, Any]:
    try:
        from google import genai
        from google.genai import errors, types
    except ImportError:
        raise PluginUnavailableError("video plugin 'veo3' needs google-genai (not installed): "
                                     "pip install 'dream2flow[veo]'") from None
    return genai, types, errors


def _genai_version(genai: Any = None) -> str:
    """The installed google-genai's version string ("unknown" when it cannot be told)."""
    v = getattr(genai, "__version__", None) if genai is not None else None
    if not v:
        try:
            from importlib.metadata import version
            v = version("google-genai")
        except Exception:  # noqa: BLE001
            v = None
    return str(v or "unknown")


def _major_minor(version: str) -> tuple[int, int] | None:
    m = re.match(r"^(\d+)\.(\d+)", version)
    return (int(m[1]), int(m[2])) if m else None


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
        self.genai_version = ver = _genai_version(self._genai)
        mm = _major_minor(ver)
        if not o.vertexai and mm is not None:
            if mm[0] >= 3:
                raise PluginUnavailableError(
                    f"veo3: google-genai {ver} removed Veo from the Gemini Developer API: pip install "
                    "'google-genai<3' (the veo extra pins it) or set veo3.options.vertexai=true")
            if mm < MIN_GENAI_DEVELOPER:
                raise PluginUnavailableError(
                    f"veo3: google-genai {ver} cannot send Veo's last frame to the Gemini Developer API: pip "
                    f"install 'google-genai>={MIN_GENAI_DEVELOPER[0]}.{MIN_GENAI_DEVELOPER[1]},<3' (the veo extra "
                    "pins it) or set veo3.options.vertexai=true")
        self.model_id = o.model or (DEFAULT_VERTEX_MODEL if o.vertexai else DEFAULT_MODEL)
        self.backend = "Vertex AI" if o.vertexai else "Gemini API"
        http = self._types.HttpOptions(base_url=o.base_url, timeout=max(1, int(round(o.request_timeout_s * 1000))))
        try:  # vertexai always explicit: GOOGLE_GENAI_USE_VERTEXAI in the environment must not switch modes
            self.client = self._genai.Client(vertexai=o.vertexai, api_key=self._key, http_options=http)
        except Exception as e:  # noqa: BLE001 - a client that cannot be built is a one-line error
            raise VideoServiceError(scrub(f"veo3: cannot create the google-genai client ({self.backend}): "
                                          f"{type(e).__name__}: {e}", [self._key])) from None
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

    def _key_hint(self) -> str:
        if self.options.vertexai:
            return f"check {self._key_env} (a key valid for Veo on Vertex AI, since veo3.options.vertexai=true)"
        return (f"check {self._key_env} (a Gemini API key from https://aistudio.google.com/apikey, on a project "
                "with Veo access)")

    def _api_call(self, fn: Any, what: str, *, retry_timeouts: bool = False) -> Any:
        """Run one google-genai call; map its errors to TransientError (retry) or VideoServiceError.

        ``retry_timeouts``: a request that got no reply in time is retried (polls, downloads); for
        the call that starts a generation it is not, since the service may have started one."""
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
                raise self._fail(f"{what}: the service refused the API key ({tag}); {self._key_hint()}") from None
            if code == 404 and what.startswith("starting"):
                raise self._fail(f"{what} failed ({tag}); check veo3.options.model ({self.model_id!r}: a Veo "
                                 f"model the {self.backend} serves) and base_url") from None
            raise self._fail(f"{what} failed ({tag})") from None
        except ValueError as e:  # google-genai refuses before sending (unsupported mode or argument)
            raise self._fail(f"{what}: google-genai {self.genai_version} refused the call: "
                             f"{scrub(e, [self._key])}") from None
        except Exception as e:  # noqa: BLE001 - httpx network errors and the like
            name = type(e).__name__
            if "Timeout" in name and name != "ConnectTimeout":
                limit = f"no reply within request_timeout_s={self.options.request_timeout_s:g} s ({name})"
                if retry_timeouts:
                    raise TransientError(limit) from None
                raise self._fail(f"{what}: {limit}; not retried, since the service may have started a (billed) "
                                 "generation; raise request_timeout_s") from None
            if "Timeout" in name or any(k in name for k in ("Connect", "Network", "RemoteProtocol", "ReadError",
                                                            "Pool")):
                raise TransientError(f"network error ({name}: {scrub(e, [self._key])})") from None
            raise self._fail(f"{what}: {name}: {scrub(e, [self._key])}") from None

    # -- the call
    def generate(self, image: np.ndarray, prompt: str, *, last_image: np.ndarray | None = None,
                 num_frames: int = 49, seed: int | None = None) -> Video:
        n = check_generate_inputs(image, prompt, last_image, num_frames)
        if seed is not None and not (0 <= int(seed) < 2 ** 32):
            raise ValueError(f"seed: Veo takes a seed in [0, 2**32), got {seed}")
        o, types = self.options, self._types
        aspect_name, aspect = self._aspect(image)
        first, box = self._image(image, aspect)
        cfg: dict[str, Any] = dict(number_of_videos=1, duration_seconds=o.duration_s, aspect_ratio=aspect_name,
                                   resolution=o.resolution, person_generation=o.person_generation)
        if o.negative_prompt:
            cfg["negative_prompt"] = o.negative_prompt
        if last_image is not None:
            cfg["last_frame"] = self._image(last_image, aspect)[0]
        sent_seed = None
        if o.vertexai:  # google-genai refuses both in Gemini API mode
            cfg["generate_audio"] = o.generate_audio
            if seed is not None:
                cfg["seed"] = sent_seed = int(seed)
        config = types.GenerateVideosConfig(**cfg)
        if hasattr(types, "GenerateVideosSource"):
            call = dict(source=types.GenerateVideosSource(prompt=prompt, image=first))
        else:  # older google-genai: the same request through the prompt/image arguments
            call = dict(prompt=prompt, image=first)

        deadline = time.monotonic() + o.timeout_s
        retry = dict(retries=o.retries, backoff_s=o.backoff_s, deadline=deadline)
        op = call_with_retries(
            lambda: self._api_call(lambda: self.client.models.generate_videos(model=self.model_id, config=config,
                                                                              **call),
                                   "starting the generation"),
            what="veo3: starting the generation", **retry)
        self.last_operation = {"name": getattr(op, "name", None), "polls": 0, "backend": self.backend}
        while not getattr(op, "done", False):
            if time.monotonic() + o.poll_interval_s > deadline:
                raise self._fail(f"operation {op.name} not done after {o.timeout_s:g} s (timeout_s); raise "
                                 "timeout_s or try later")
            time.sleep(o.poll_interval_s)
            op = call_with_retries(lambda: self._api_call(lambda: self.client.operations.get(op),
                                                          "polling the operation", retry_timeouts=True),
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
        model = (f"veo3:{self.model_id} via {self.backend} ({total} frames at {fps:g} fps resampled to {n}; "
                 f"{w}x{h} {aspect_name}" + (f", letterbox cropped to {cw}x{ch}" if padded else "")
                 + f", resized to {W0}x{H0}"
                 + (f"; seed {seed} not sent: the Gemini API takes none" if seed is not None and sent_seed is None
                    else "") + ")")
        return Video(frames=frames, fps=(n - 1) / src_duration if src_duration > 0 else fps, model=model,
                     prompt=prompt, seed=sent_seed)

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
        m = _FILES_URI.search(uri) if not self.options.vertexai else None
        if m:  # a Files API file: google-genai downloads it from base_url with the key
            target = video if uri.startswith("https://") and re.fullmatch(r"[a-z0-9]+", m[1]) else f"files/{m[1]}"
            return call_with_retries(
                lambda: self._api_call(lambda: self.client.files.download(file=target), "downloading the video",
                                       retry_timeouts=True),
                what="veo3: downloading the video", **retry)
        if not uri.startswith(("http://", "https://")):
            raise self._fail(f"the video was written to {uri}; this adapter reads videos returned inline or "
                             "through the Files API (do not set an output storage uri)")

        def download() -> bytes:  # any other URL: fetched without the key
            r = http_request("GET", uri, timeout=max(self.options.request_timeout_s, 120.0))
            if r.status == 429 or r.status >= 500:
                raise TransientError(f"downloading the video: HTTP {r.status}", r.retry_after())
            if r.status != 200:
                raise self._fail(f"downloading the video failed: HTTP {r.status}")
            return r.body

        return call_with_retries(download, what="veo3: downloading the video", **retry)


def _factory(options: VeoOptions | None, ctx: Any = None) -> VeoVideoModel:
    return VeoVideoModel(options or VeoOptions())


# --------------------------------------------------------------------------- the stand-in server


_VERTEX = re.compile(r"^/(?P<ver>v1|v1beta1)/(?P<res>(?:projects/[^/]+/locations/[^/]+/)?publishers/google/"
                     r"models/(?P<model>[^/:]+)):(?P<verb>predictLongRunning|fetchPredictOperation)$")
_DEV_PREDICT = re.compile(r"^/(?P<ver>v1|v1beta|v1alpha)/models/(?P<model>[^/:]+):predictLongRunning$")
_DEV_OPERATION = re.compile(r"^/(?P<ver>v1|v1beta|v1alpha)/(?P<name>(?:models/[^/:]+/)?operations/[^/:]+)$")
_DEV_FILE = re.compile(r"^/(?P<ver>v1|v1beta|v1alpha)/files/(?P<id>[A-Za-z0-9_-]+):download$")
_DEV_PARAMS = frozenset({"sampleCount", "durationSeconds", "aspectRatio", "resolution", "personGeneration",
                         "negativePrompt", "enhancePrompt"})


class VeoStandIn(StandInServer):
    """A local server speaking Veo's long-running-operation protocols, for checks and tests.

    **Gemini API** (the adapter's default): ``POST /v1beta/models/{model}:predictLongRunning``,
    ``GET /v1beta/models/{model}/operations/{id}``, and the Files API download
    ``GET /v1beta/files/{id}:download?alt=media`` (answered with a 302 to ``/media/{id}`` unless
    ``redirect_download=False``). The done operation carries
    ``response.generateVideoResponse.generatedSamples[0].video.uri``, a Files API URL on this
    server (or on ``uri_base``, e.g. ``https://generativelanguage.googleapis.com`` as the real
    service names it), or with ``serve_uri=True`` a plain ``/media/`` link. Unknown
    ``parameters`` are refused as the API refuses them.

    **Vertex AI**: ``POST /v1beta1/publishers/google/models/{model}:predictLongRunning`` and
    ``...:fetchPredictOperation``; videos inline as base64 mp4 (``videos[].bytesBase64Encoded``)
    or, with ``serve_uri=True``, as a ``gcsUri``-style http link served from ``/media/``.

    Both check the key (``x-goog-api-key`` header, or ``key`` query parameter) and the body, and
    "generate" the (letterboxed) first image drifting right, cross-fading into ``lastFrame`` when
    given: ``durationSeconds`` x ``fps`` frames of ``height`` pixels in the requested aspect ratio.

    Knobs: ``polls_before_done``, ``quota_first`` (predict requests answered 429
    RESOURCE_EXHAUSTED first), ``server_errors_first`` (500s first), ``rai_filtered`` (the done
    operation has no videos and ``raiMediaFilteredReasons``), ``operation_error`` (the done
    operation carries ``error``), ``slow_predict_s`` (every predict waits that long before
    answering), ``slow_first_polls`` / ``slow_s`` (the first polls wait ``slow_s``),
    ``known_models`` (other model ids get 404 NOT_FOUND). Received requests are in :attr:`requests`.
    """

    def __init__(self, api_key: str, *, polls_before_done: int = 1, fps: float = 8.0, height: int = 72,
                 shift_px: float = 6.0, quota_first: int = 0, server_errors_first: int = 0,
                 rai_filtered: list[str] | None = None, operation_error: dict[str, Any] | None = None,
                 serve_uri: bool = False, uri_base: str | None = None, redirect_download: bool = True,
                 slow_predict_s: float = 0.0, slow_first_polls: int = 0, slow_s: float = 1.0,
                 known_models: Any = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.api_key, self.polls_before_done, self.fps, self.height = api_key, polls_before_done, fps, height
        self.shift_px, self.quota_first, self.server_errors_first = shift_px, quota_first, server_errors_first
        self.rai_filtered, self.operation_error, self.serve_uri = rai_filtered, operation_error, serve_uri
        self.uri_base, self.redirect_download = uri_base, redirect_download
        self.slow_predict_s, self.slow_first_polls, self.slow_s = slow_predict_s, slow_first_polls, slow_s
        self.known_models = None if known_models is None else frozenset(known_models)
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
        parts = urllib.parse.urlsplit(path)
        p, query = parts.path, urllib.parse.parse_qs(parts.query)
        if method == "GET" and p.startswith("/media/"):  # like a signed storage URL: no key needed
            data = self.media.get(p[len("/media/"):])
            return (200, {"Content-Type": "video/mp4"}, data) if data else self._err(404, "NOT_FOUND", "no such file")
        key = headers.get("x-goog-api-key") or (query.get("key") or [None])[0]
        if key != self.api_key:
            return self._err(401 if not key else 400, "UNAUTHENTICATED" if not key else "INVALID_ARGUMENT",
                             "API key not valid. Please pass a valid API key.")
        if method == "POST" and (m := _DEV_PREDICT.match(p)):
            return self._predict("dev", m["model"], f"models/{m['model']}", self._json(body))
        if method == "GET" and (m := _DEV_FILE.match(p)):
            return self._download(m["id"], query)
        if method == "GET" and (m := _DEV_OPERATION.match(p)):
            return self._poll("dev", m["name"])
        m = _VERTEX.match(p)
        if method != "POST" or m is None:
            return self._err(404, "NOT_FOUND", f"no such method {method} {p}")
        req = self._json(body)
        if m["verb"] == "predictLongRunning":
            return self._predict("vertex", m["model"], m["res"], req)
        return self._poll("vertex", req.get("operationName") if isinstance(req, dict) else None)

    @staticmethod
    def _json(body: bytes) -> Any:
        try:
            return json.loads(body) if body else None
        except ValueError:
            return None

    def _predict(self, mode: str, model: str, resource: str, req: Any):
        if self.slow_predict_s > 0:
            time.sleep(self.slow_predict_s)
        if self.known_models is not None and model not in self.known_models:
            return self._err(404, "NOT_FOUND", f"models/{model} is not found for API version "
                                               f"{'v1beta' if mode == 'dev' else 'v1beta1'}, or is not supported "
                                               "for predictLongRunning.")
        with self.lock:
            quota = self.quota_first > 0
            self.quota_first -= int(quota)
            server = not quota and self.server_errors_first > 0
            self.server_errors_first -= int(server)
        if quota:
            where = "generativelanguage.googleapis.com" if mode == "dev" else "aiplatform.googleapis.com"
            return self._err(429, "RESOURCE_EXHAUSTED", f"You exceeded your current quota ({where}/"
                                                         "predict_long_running_requests); check your plan and billing")
        if server:
            return self._err(500, "INTERNAL", "Internal error encountered.")
        if not isinstance(req, dict) or not isinstance(req.get("instances"), list) or len(req["instances"]) != 1:
            return self._err(400, "INVALID_ARGUMENT", "instances must hold exactly one instance")
        inst, params = req["instances"][0], req.get("parameters") or {}
        if mode == "dev":
            unknown = sorted(set(params) - _DEV_PARAMS)
            if unknown:
                return self._err(400, "INVALID_ARGUMENT", f"Invalid JSON payload received. Unknown name "
                                                          f"\"{unknown[0]}\" at 'parameters': Cannot find field.")
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
        if params.get("resolution", "720p") not in ("720p", "1080p"):
            return self._err(400, "INVALID_ARGUMENT", "parameters.resolution must be 720p or 1080p")
        if params.get("sampleCount", 1) not in (1, 2, 3, 4):
            return self._err(400, "INVALID_ARGUMENT", "parameters.sampleCount must be 1-4")
        if params.get("personGeneration", "allow_adult") not in ("allow_adult", "dont_allow", "allow_all"):
            return self._err(400, "INVALID_ARGUMENT", "parameters.personGeneration must be allow_adult, "
                                                      "dont_allow or allow_all")
        if "seed" in params and not (isinstance(params["seed"], int) and 0 <= params["seed"] < 2 ** 32):
            return self._err(400, "INVALID_ARGUMENT", "parameters.seed must be a uint32")
        num, den = (int(x) for x in aspect.split(":"))
        if abs(first.shape[1] / first.shape[0] - num / den) > 0.02:
            return self._err(400, "INVALID_ARGUMENT", f"image aspect ratio {first.shape[1]}x{first.shape[0]} "
                                                      f"does not match aspectRatio {aspect}")
        if mode == "dev":
            name = f"{resource}/operations/{uuid.uuid4().hex[:12]}"
        else:
            base = (resource if resource.startswith("projects/")
                    else f"projects/stand-in/locations/us-central1/{resource}")
            name = f"{base}/operations/{uuid.uuid4()}"
        with self.lock:
            self.operations[name] = {"mode": mode, "request": req, "first": first, "last": last, "polls": 0,
                                     "duration": dur, "aspect": num / den}
        return self.json_reply(200, {"name": name})

    def _poll(self, mode: str, name: str | None):
        op = self.operations.get(name or "")
        if op is None or op["mode"] != mode:
            return self._err(404, "NOT_FOUND", f"operation {name!r} not found")
        with self.lock:
            op["polls"] += 1
            polls = op["polls"]
        if polls <= self.slow_first_polls:
            time.sleep(self.slow_s)
        if polls <= self.polls_before_done:
            return self.json_reply(200, {"name": name, "done": False})
        if self.operation_error is not None:
            return self.json_reply(200, {"name": name, "done": True, "error": self.operation_error})
        if self.rai_filtered is not None:
            inner = {"raiMediaFilteredCount": 1, "raiMediaFilteredReasons": list(self.rai_filtered)}
            return self.json_reply(200, {"name": name, "done": True, "response": self._wrap(mode, inner)})
        H = self.height
        W = int(round(H * op["aspect"] / 2)) * 2
        frames = synthetic_video(op["first"], op["last"], int(round(op["duration"] * self.fps)), H, W, self.shift_px)
        data = encode_mp4(frames, self.fps)
        fid = uuid.uuid4().hex[:12]
        with self.lock:
            self.media[fid] = data
        if mode == "dev":
            uri = (f"{self.url}/media/{fid}" if self.serve_uri
                   else f"{self.uri_base or self.url}/v1beta/files/{fid}:download?alt=media")
            inner = {"generatedSamples": [{"video": {"uri": uri}}]}
        elif self.serve_uri:
            inner = {"raiMediaFilteredCount": 0, "videos": [{"gcsUri": f"{self.url}/media/{fid}",
                                                             "mimeType": "video/mp4"}]}
        else:
            inner = {"raiMediaFilteredCount": 0, "videos": [{"bytesBase64Encoded": base64.b64encode(data).decode(),
                                                             "mimeType": "video/mp4"}]}
        return self.json_reply(200, {"name": name, "done": True, "response": self._wrap(mode, inner)})

    @staticmethod
    def _wrap(mode: str, inner: dict[str, Any]) -> dict[str, Any]:
        if mode == "dev":
            return {"@type": "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse",
                    "generateVideoResponse": inner}
        return {"@type": "type.googleapis.com/cloud.ai.large_models.vision.GenerateVideoResponse", **inner}

    def _download(self, fid: str, query: Mapping[str, list[str]]):
        if (query.get("alt") or [None])[0] != "media":
            return self._err(400, "INVALID_ARGUMENT", "file downloads need alt=media")
        if fid not in self.media:
            return self._err(404, "NOT_FOUND", f"File files/{fid} not found")
        if self.redirect_download:
            return 302, {"Location": f"{self.url}/media/{fid}"}, b""
        return 200, {"Content-Type": "video/mp4"}, self.media[fid]


def _check_options(env: Any) -> dict[str, Any]:
    """Start a stand-in speaking Veo's protocols for ``d2f check`` (no credits are spent); it
    accepts the key the adapter reads and stops when the check's temporary folder is removed.
    The checks run the default Gemini API mode."""
    srv = VeoStandIn(env_secret(*KEY_ENVS)[1] or "", watch=env.tmp_dir, max_life_s=600, idle_s=120).start()
    return {"base_url": srv.url, "poll_interval_s": 0.02, "backoff_s": 0.01, "timeout_s": 60.0}


@hookimpl
def d2f_register(register):
    register(Manifest(
        name="veo3", kind="video", factory=_factory, options_model=VeoOptions,
        capabilities=VeoVideoModel.capabilities, extra="veo",
        requires=("google.genai", "imageio", "imageio_ffmpeg", "PIL"), available=_missing_key,
        description="Google Veo 3 image-to-video (first/last frame) through google-genai's Gemini API "
                    "(or Vertex AI: vertexai=true); key from GEMINI_API_KEY",
        verified="local HTTP server speaking the Gemini API's documented Veo REST protocol as google-genai 2.34 "
                 "calls it (and the Vertex AI one; quota, safety filter, slow operations, timeouts); never "
                 "against the real service",
        check_options=_check_options))
