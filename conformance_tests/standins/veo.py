"""A local server speaking Google Veo's REST protocols (Gemini API and Vertex AI), for
``d2f check veo3`` and the tests; the adapter it stands in for is ``d2f_plugins.video.veo``.

No credits are spent: the server checks the key and the request body as the documentation
describes and "generates" the (letterboxed) first image drifting right.
"""

from __future__ import annotations

import base64
import io
import json
import re
import time
import urllib.parse
import uuid
from typing import Any, Mapping

import numpy as np

from .server import StandInServer, encode_mp4, synthetic_video

__all__ = ["VeoStandIn"]


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
