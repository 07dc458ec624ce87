"""A second, independently written server for the Kling image2video protocol (tests only).

It differs from ``d2f_conformance.standins.kling.KlingStandIn`` everywhere the documentation
leaves room, so the adapter is shown not to depend on one server's habits:

* tokens are verified with PyJWT (not the adapter's own HS256 code), with no leeway;
* task ids are long numeric strings, replies carry extra fields (``task_info``, timestamps,
  ``request_id``), the Content-Type has a charset;
* the status goes ``submitted`` -> ``processing`` (several polls) -> ``succeed``;
* the video is served by a *different* server (another port, as a CDN would), at 24 fps with
  an odd frame count, at a size that is not the input's;
* the video URL has a query string (signed-URL style).

Runs on 127.0.0.1, random free port, stops after ``life_s`` seconds or on ``close()``.
"""

from __future__ import annotations

import base64
import io
import json
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np


def _serve(handler_cls, life_s: float):
    srv = HTTPServer(("127.0.0.1", 0), handler_cls)
    srv.timeout = 0.05
    stop = threading.Event()
    born = time.monotonic()

    def loop():
        while not stop.is_set() and time.monotonic() - born < life_s:
            srv.handle_request()
        srv.server_close()

    threading.Thread(target=loop, daemon=True).start()
    return srv, stop


class VariantKling:
    def __init__(self, access_key: str, secret_key: str, *, processing_polls: int = 3, life_s: float = 60.0,
                 fps: int = 24, frames: int = 121) -> None:
        import jwt  # PyJWT

        self.seen: list[dict] = []
        self.cdn_seen: list[dict] = []
        self.videos: dict[str, bytes] = {}
        tasks: dict[str, dict] = {}
        outer = self

        class CDN(BaseHTTPRequestHandler):
            def do_GET(self):
                outer.cdn_seen.append({"path": self.path, "headers": dict(self.headers.items())})
                key = self.path.split("?")[0].rsplit("/", 1)[-1]
                data = outer.videos.get(key)
                self.send_response(200 if data else 404)
                self.send_header("Content-Type", "video/mp4")
                self.send_header("Content-Length", str(len(data or b"")))
                self.end_headers()
                self.wfile.write(data or b"")

            def log_message(self, *a):
                pass

        class API(BaseHTTPRequestHandler):
            def _reply(self, status, code, message, data):
                payload = json.dumps({"code": code, "message": message, "request_id": f"req-{random.random()}",
                                      "data": data}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _auth(self) -> bool:
                auth = self.headers.get("Authorization", "")
                if not auth.startswith("Bearer "):
                    self._reply(401, 1001, "Authorization is empty", None)
                    return False
                try:
                    claims = jwt.decode(auth[7:], secret_key, algorithms=["HS256"], issuer=access_key,
                                        options={"require": ["exp", "nbf", "iss"]})
                except jwt.PyJWTError as e:
                    self._reply(401, 1002, f"Authorization is invalid ({type(e).__name__})", None)
                    return False
                outer.seen[-1]["claims"] = claims
                return True

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.seen.append({"method": "POST", "path": self.path, "body": json.loads(raw or b"null")})
                if not self._auth():
                    return
                if self.path != "/v1/videos/image2video":
                    return self._reply(404, 1203, "not found", None)
                body = outer.seen[-1]["body"]
                from PIL import Image
                img = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["image"]))).convert("RGB"))
                tid = str(random.randrange(10 ** 17, 10 ** 18))
                tasks[tid] = {"polls": 0, "image": img}
                self._reply(200, 0, "SUCCEED", {"task_id": tid, "task_status": "submitted",
                                                "task_info": {"external_task_id": None},
                                                "created_at": int(time.time() * 1000),
                                                "updated_at": int(time.time() * 1000)})

            def do_GET(self):
                outer.seen.append({"method": "GET", "path": self.path})
                if not self._auth():
                    return
                tid = self.path.rsplit("/", 1)[-1]
                task = tasks.get(tid)
                if task is None or not self.path.startswith("/v1/videos/image2video/"):
                    return self._reply(404, 1203, "task not found", None)
                task["polls"] += 1
                data = {"task_id": tid, "task_info": {}, "created_at": 1, "updated_at": 2}
                if task["polls"] <= processing_polls:
                    data["task_status"] = "submitted" if task["polls"] == 1 else "processing"
                    data["task_status_msg"] = ""
                    return self._reply(200, 0, "SUCCEED", data)
                if tid not in outer.videos:
                    from d2f_plugins.video.file_video import write_video
                    import tempfile
                    from pathlib import Path
                    from PIL import Image
                    img = task["image"]
                    h, w = img.shape[:2]
                    small = np.asarray(Image.fromarray(img).resize((w // 5 * 2, h // 5 * 2)))
                    vid = np.stack([np.roll(small, t // 10, axis=1) for t in range(frames)])
                    with tempfile.TemporaryDirectory() as d:
                        p = Path(d) / "x.mp4"
                        write_video(p, vid, fps)
                        outer.videos[f"{tid}.mp4"] = p.read_bytes()
                data.update(task_status="succeed", task_status_msg="",
                            task_result={"videos": [{"id": "v" + tid, "duration": "5.0",
                                                     "url": f"{outer.cdn_url}/out/{tid}.mp4?sig=abc&exp=1"}]})
                return self._reply(200, 0, "SUCCEED", data)

            def log_message(self, *a):
                pass

        self._cdn, self._cdn_stop = _serve(CDN, life_s)
        self._api, self._api_stop = _serve(API, life_s)
        self.url = f"http://127.0.0.1:{self._api.server_address[1]}"
        self.cdn_url = f"http://127.0.0.1:{self._cdn.server_address[1]}"

    def close(self) -> None:
        self._api_stop.set()
        self._cdn_stop.set()
