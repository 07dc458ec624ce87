"""A local server speaking the Kling AI image-to-video REST protocol (JWT verification included),
for ``d2f check kling`` and the tests; the adapter it stands in for is ``d2f_plugins.video.kling``.

``python -m d2f_conformance.standins.kling serve`` starts one for manual end-to-end runs (point
the adapter at it with ``--set video.options.base_url=URL``); no credits are spent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import time
import uuid
from typing import Any, Mapping

import numpy as np

from d2f_plugins.video._adapter_util import env_secret
from d2f_plugins.video.kling import ACCESS_ENV, ENDPOINT, SECRET_ENV, _missing_keys

from .server import StandInServer, encode_mp4, synthetic_video

__all__ = ["KlingStandIn", "verify_jwt", "main"]


# --------------------------------------------------------------------------- JWT verification (server side)


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def verify_jwt(token: str, access_key: str, secret_key: str, *, now: float | None = None,
               leeway_s: float = 0.0) -> tuple[int, str]:
    """Check a Kling token as the service does: (0, "") when valid, else (Kling code, reason).

    Codes: 1002 malformed / wrong signature / wrong issuer, 1003 not yet valid (nbf), 1004 expired.
    """
    t = time.time() if now is None else now
    parts = token.split(".")
    if len(parts) != 3:
        return 1002, "token is not a JWT (header.payload.signature)"
    try:
        header = json.loads(_b64url_decode(parts[0]))
        payload = json.loads(_b64url_decode(parts[1]))
        sig = _b64url_decode(parts[2])
    except (ValueError, UnicodeDecodeError):
        return 1002, "token parts are not base64url JSON"
    if not isinstance(header, dict) or header.get("alg") != "HS256":
        return 1002, f"alg must be HS256, got {header.get('alg') if isinstance(header, dict) else header!r}"
    expect = hmac.new(secret_key.encode(), f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(sig, expect):
        return 1002, "signature does not match the secret key"
    if not isinstance(payload, dict) or payload.get("iss") != access_key:
        return 1002, "iss is not the access key"
    for claim in ("exp", "nbf"):
        if not isinstance(payload.get(claim), (int, float)):
            return 1002, f"claim {claim!r} missing or not a number"
    if payload["nbf"] > t + leeway_s:
        return 1003, "token not yet valid (nbf in the future)"
    if payload["exp"] <= t - leeway_s:
        return 1004, "token expired"
    return 0, ""


# --------------------------------------------------------------------------- the server


class KlingStandIn(StandInServer):
    """A local server speaking the Kling image-to-video protocol, for checks and tests.

    It verifies the JWT (signature with the secret key, ``iss``, ``nbf``, ``exp``) and the request
    body as the documentation describes, and "generates" the input image drifting right
    (cross-fading into ``image_tail`` when given), ``duration`` x ``fps`` frames, short side
    ``short_side`` pixels, as an mp4 served from ``/media/<task>.mp4``.

    Knobs for tests: ``polls_before_done`` (status polls answered ``submitted``/``processing``),
    ``rate_limit_first`` (create requests answered 429 / code 1302 first), ``server_errors_first``
    (create requests answered 500 / 5000 first), ``poll_errors_first`` (polls answered 503 first),
    ``account_code`` (every create answered 429 with that code, e.g. 1102 = no resource pack),
    ``fail_task_msg`` (tasks end ``failed`` with this message), ``retry_after`` (seconds, header of
    the 429s), ``std_end_frame_models`` (models whose ``std`` mode takes ``image_tail``; for any
    other model an end frame in ``std`` mode is refused with code 1201, as the service's capability
    map has it). Received requests are in :attr:`requests`; tasks in :attr:`tasks`.
    """

    def __init__(self, access_key: str, secret_key: str, *, polls_before_done: int = 1, fps: float = 8.0,
                 short_side: int = 72, shift_px: float = 6.0, rate_limit_first: int = 0,
                 server_errors_first: int = 0, poll_errors_first: int = 0, account_code: int | None = None,
                 fail_task_msg: str | None = None, retry_after: float | None = None,
                 std_end_frame_models: tuple[str, ...] = ("kling-v1",), **kw: Any) -> None:
        super().__init__(**kw)
        self.std_end_frame_models = tuple(std_end_frame_models)
        self.access_key, self.secret_key = access_key, secret_key
        self.polls_before_done, self.fps, self.short_side, self.shift_px = polls_before_done, fps, short_side, shift_px
        self.rate_limit_first, self.server_errors_first = rate_limit_first, server_errors_first
        self.poll_errors_first, self.account_code = poll_errors_first, account_code
        self.fail_task_msg, self.retry_after = fail_task_msg, retry_after
        self.tasks: dict[str, dict[str, Any]] = {}
        self.media: dict[str, bytes] = {}
        self.media_auth_headers: list[str | None] = []

    def _env(self, data: Any, code: int = 0, message: str = "SUCCEED") -> dict[str, Any]:
        return {"code": code, "message": message, "request_id": str(uuid.uuid4()), "data": data}

    def _error(self, status: int, code: int, message: str, headers: Mapping[str, str] | None = None):
        return self.json_reply(status, self._env(None, code, message), headers)

    def _auth_problem(self, headers: Mapping[str, str]):
        auth = headers.get("Authorization")
        if not auth:
            return self._error(401, 1001, "Authorization is empty")
        if not auth.startswith("Bearer "):
            return self._error(401, 1002, "Authorization is invalid")
        code, why = verify_jwt(auth[len("Bearer "):], self.access_key, self.secret_key)
        return self._error(401, code, f"Authorization is invalid: {why}") if code else None

    @staticmethod
    def _image(value: Any, field: str) -> tuple[np.ndarray | None, str]:
        if not isinstance(value, str) or not value:
            return None, f"{field} must be a non-empty string"
        if value.startswith("data:"):
            return None, f"{field} must be plain base64 without a data: prefix"
        try:
            raw = base64.b64decode(value, validate=True)
        except ValueError:
            return None, f"{field} is not valid base64"
        try:
            from PIL import Image
            with Image.open(io.BytesIO(raw)) as im:
                if im.format not in ("PNG", "JPEG"):
                    return None, f"{field} must be jpg/jpeg/png, got {im.format}"
                arr = np.asarray(im.convert("RGB"))
        except Exception:  # noqa: BLE001
            return None, f"{field} is not a readable image"
        h, w = arr.shape[:2]
        if min(h, w) < 300:
            return None, f"{field} must be at least 300x300 px, got {w}x{h}"
        if not (1 / 2.5 <= w / h <= 2.5):
            return None, f"{field} aspect ratio must be between 1:2.5 and 2.5:1"
        return arr, ""

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes):
        path = path.split("?", 1)[0]
        if method == "GET" and path.startswith("/media/"):
            self.media_auth_headers.append(headers.get("Authorization"))
            data = self.media.get(path[len("/media/"):])
            return (200, {"Content-Type": "video/mp4"}, data) if data else self._error(404, 1203, "no such file")
        problem = self._auth_problem(headers)
        if problem:
            return problem
        if method == "POST" and path == ENDPOINT:
            return self._create(body)
        if method == "GET" and path.startswith(ENDPOINT + "/"):
            return self._query(path[len(ENDPOINT) + 1:])
        return self._error(404, 1203, f"no such endpoint {method} {path}")

    def _create(self, raw: bytes):
        if self.account_code is not None:
            return self._error(429, self.account_code, "Account exception: resource pack depleted or expired")
        if self.rate_limit_first > 0:
            self.rate_limit_first -= 1
            hdr = {"Retry-After": f"{self.retry_after:g}"} if self.retry_after is not None else None
            return self._error(429, 1302, "API request too fast, rate limit exceeded", hdr)
        if self.server_errors_first > 0:
            self.server_errors_first -= 1
            return self._error(500, 5000, "Server internal error")
        try:
            req = json.loads(raw)
        except ValueError:
            return self._error(400, 1200, "body is not JSON")
        if not isinstance(req, dict):
            return self._error(400, 1200, "body must be a JSON object")
        first, why = self._image(req.get("image"), "image")
        if first is None:
            return self._error(400, 1201, why)
        last = None
        if "image_tail" in req:
            last, why = self._image(req.get("image_tail"), "image_tail")
            if last is None:
                return self._error(400, 1201, why)
        for field, limit in (("prompt", 2500), ("negative_prompt", 2500)):
            if field in req and (not isinstance(req[field], str) or len(req[field]) > limit):
                return self._error(400, 1201, f"{field} must be a string of at most {limit} characters")
        if req.get("duration", "5") not in ("5", "10"):
            return self._error(400, 1201, "duration must be the string \"5\" or \"10\"")
        if req.get("mode", "std") not in ("std", "pro"):
            return self._error(400, 1201, "mode must be std or pro")
        model_name = req.get("model_name", "kling-v1")
        if last is not None and req.get("mode", "std") == "std" and model_name not in self.std_end_frame_models:
            return self._error(400, 1201, f"image_tail is not supported in std mode for {model_name}; use pro")
        if "cfg_scale" in req and not (isinstance(req["cfg_scale"], (int, float)) and 0 <= req["cfg_scale"] <= 1):
            return self._error(400, 1201, "cfg_scale must be a number in [0, 1]")
        if not isinstance(req.get("model_name", "kling-v1"), str):
            return self._error(400, 1201, "model_name must be a string")
        task_id = uuid.uuid4().hex[:18]
        now = int(time.time() * 1000)
        with self.lock:
            self.tasks[task_id] = {"request": req, "first": first, "last": last, "polls": 0, "created": now}
        return self.json_reply(200, self._env({"task_id": task_id, "task_status": "submitted",
                                               "created_at": now, "updated_at": now}))

    def _query(self, task_id: str):
        if self.poll_errors_first > 0:
            self.poll_errors_first -= 1
            return self._error(503, 5001, "Server temporarily unavailable")
        task = self.tasks.get(task_id)
        if task is None:
            return self._error(404, 1203, f"task {task_id} does not exist")
        with self.lock:
            task["polls"] += 1
            polls = task["polls"]
        data: dict[str, Any] = {"task_id": task_id, "created_at": task["created"],
                                "updated_at": int(time.time() * 1000)}
        if polls <= self.polls_before_done:
            data["task_status"] = "submitted" if polls == 1 else "processing"
            return self.json_reply(200, self._env(data))
        if self.fail_task_msg is not None:
            data.update(task_status="failed", task_status_msg=self.fail_task_msg)
            return self.json_reply(200, self._env(data))
        if task_id not in self.media:
            first, last = task["first"], task["last"]
            h, w = first.shape[:2]
            s = self.short_side / min(h, w)
            H, W = max(2, int(round(h * s / 2)) * 2), max(2, int(round(w * s / 2)) * 2)
            seconds = int(task["request"].get("duration", "5"))
            frames = synthetic_video(first, last, int(round(seconds * self.fps)), H, W, self.shift_px)
            self.media[f"{task_id}.mp4"] = encode_mp4(frames, self.fps)
        data.update(task_status="succeed", task_status_msg="",
                    task_result={"videos": [{"id": task_id, "url": f"{self.url}/media/{task_id}.mp4",
                                             "duration": task["request"].get("duration", "5")}]})
        return self.json_reply(200, self._env(data))


def main(argv: list[str] | None = None) -> None:
    """``python -m d2f_conformance.standins.kling serve [--seconds N]``: run a local Kling stand-in."""
    import argparse
    p = argparse.ArgumentParser(description="Run a local stand-in of the Kling image2video API.")
    p.add_argument("command", choices=["serve"])
    p.add_argument("--seconds", type=float, default=600.0, help="stop after this many seconds")
    p.add_argument("--polls", type=int, default=1, help="polls answered 'processing' before 'succeed'")
    a = p.parse_args(argv)
    why = _missing_keys()
    if why:
        raise SystemExit(f"kling stand-in: {why} (any values work; the adapter must see the same ones)")
    srv = KlingStandIn(env_secret(ACCESS_ENV)[1], env_secret(SECRET_ENV)[1], polls_before_done=a.polls,
                       max_life_s=a.seconds, idle_s=a.seconds).start()
    print(f"Kling stand-in at {srv.url} for {a.seconds:g} s: --set video.options.base_url={srv.url} "
          "--set video.options.poll_interval_s=0.1", flush=True)
    try:
        while srv.running:
            time.sleep(0.2)
    except KeyboardInterrupt:
        srv.stop()


if __name__ == "__main__":
    main()
