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
  pins that. With google-genai 3.x the adapter stops with one line saying so. Checked against the
  released wheels' source (``google/genai/models.py``): 1.41.0 raises "last_frame parameter is
  not supported in Gemini API"; 1.42.0 sends ``instances[0].lastFrame``; 2.34.0 (installed here)
  sends ``{model}:predictLongRunning`` in this mode; 3.0.0 and 3.6.1 ``Models._generate_videos``
  raise ``ValueError("This method is only supported in Gemini Enterprise Agent Platform mode, not
  in Gemini Developer API mode.")`` before any request (Vertex AI mode unchanged). The GitHub
  main branch mirrored here (2.19.0) still has the Developer API path: the removal came with 3.0. On the wire (as
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

``d2f_conformance.standins.veo.VeoStandIn`` is a local server speaking both protocols;
``d2f check veo3`` runs the conformance checks against it in the default (Gemini API) mode,
spending no credits.
"""

from __future__ import annotations

import io
import re
import time
from typing import Any, Literal, Mapping

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from d2f_core import Manifest, ModelInputSpec, Video, hookimpl
from d2f_core.registry import PluginUnavailableError
from d2f_core.validate import check_image

from ._adapter_util import (TransientError, VideoServiceError, call_with_retries, check_generate_inputs,
                            crop_box, decode_video_bytes, encode_image, env_secret, http_request,
                            pad_to_aspect, resample_frames, resize_frames, scrub)

__all__ = ["VeoOptions", "VeoVideoModel", "KEY_ENVS", "DEFAULT_MODEL", "DEFAULT_VERTEX_MODEL",
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
    kind = "video"
    capabilities = frozenset({"api", "end_frame_conditioning", "model_input"})
    Options = VeoOptions
    extra = "veo"
    requires = ("google.genai", "imageio", "imageio_ffmpeg", "PIL")
    available = staticmethod(_missing_key)
    description = ("Google Veo 3 image-to-video (first/last frame) through google-genai's Gemini API "
                   "(or Vertex AI: vertexai=true); key from GEMINI_API_KEY")
    verified = ("local HTTP server speaking the Gemini API's documented Veo REST protocol as google-genai "
                "2.34 calls it (and the Vertex AI one; quota, safety filter, slow operations, timeouts); "
                "never against the real service")
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


@hookimpl
def d2f_register(register):
    register(Manifest.of(VeoVideoModel))
