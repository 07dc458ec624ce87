"""The base of the local HTTP stand-ins for remote video services (test and check machinery).

* :class:`StandInServer`: a threaded HTTP server on 127.0.0.1 (random free port) with a bounded
  life (``max_life_s``, ``idle_s``, or until a watched folder disappears); subclasses implement
  ``handle(method, path, headers, body)``. Every request is recorded in ``requests``.
* :func:`synthetic_video` / :func:`encode_mp4`: what the stand-ins "generate" and how they
  serve it.

This lives in ``d2f_conformance`` (not in the shipped adapters): only ``d2f check`` and the
tests start these servers.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from d2f_plugins.video._adapter_util import resize_frames

__all__ = ["StandInServer", "Headers", "SeenRequest", "synthetic_video", "encode_mp4"]


class Headers(dict):
    """Request headers with case-insensitive lookup (HTTP header names are case-insensitive)."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__((k.lower(), v) for k, v in items)

    def __getitem__(self, k: str) -> str:
        return super().__getitem__(k.lower())

    def __contains__(self, k: object) -> bool:
        return isinstance(k, str) and super().__contains__(k.lower())

    def get(self, k: str, default: Any = None) -> Any:
        return super().get(k.lower(), default)


@dataclass
class SeenRequest:
    """One request a stand-in received (method, path, headers, parsed JSON body)."""

    method: str
    path: str
    headers: Headers
    body: Any = None
    raw: bytes = b""


class StandInServer:
    """A threaded HTTP server on 127.0.0.1 (random free port) that stops by itself.

    Subclasses implement ``handle(method, path, headers, body) -> (status, headers, bytes)``.
    The server stops after ``max_life_s`` seconds, after ``idle_s`` seconds without a request,
    when ``watch`` (a folder) disappears, or on :meth:`stop`. Every request is recorded in
    :attr:`requests` (for tests). Use as a context manager or call :meth:`start` / :meth:`stop`.
    """

    def __init__(self, *, max_life_s: float = 600.0, idle_s: float = 300.0,
                 watch: str | os.PathLike | None = None) -> None:
        self.max_life_s, self.idle_s = float(max_life_s), float(idle_s)
        self.watch = Path(watch) if watch is not None else None
        self.requests: list[SeenRequest] = []
        self.lock = threading.Lock()
        self._httpd: Any = None
        self._stopped = threading.Event()
        self._last = time.monotonic()

    # -- to implement
    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes
               ) -> tuple[int, Mapping[str, str], bytes]:
        raise NotImplementedError

    # -- helpers for subclasses
    @staticmethod
    def json_reply(status: int, obj: Any, headers: Mapping[str, str] | None = None
                   ) -> tuple[int, Mapping[str, str], bytes]:
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        return status, h, json.dumps(obj).encode("utf-8")

    @property
    def url(self) -> str:
        assert self._httpd is not None, "start() the server first"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "StandInServer":
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                server._last = time.monotonic()
                try:
                    parsed = json.loads(raw) if raw else None
                except (ValueError, UnicodeDecodeError):
                    parsed = None
                with server.lock:
                    server.requests.append(SeenRequest(self.command, self.path, Headers(self.headers.items()),
                                                 parsed, raw))
                try:
                    status, hdrs, payload = server.handle(self.command, self.path, self.headers, raw)
                except Exception as e:  # noqa: BLE001 - a stand-in bug becomes a 500, not a hang
                    status, hdrs, payload = server.json_reply(500, {"error": f"{type(e).__name__}: {e}"})
                self.send_response(status)
                for k, v in hdrs.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, *args: Any) -> None:  # quiet: never print request lines
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._born = time.monotonic()
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                         name="d2f-stand-in", daemon=True).start()
        threading.Thread(target=self._watchdog, name="d2f-stand-in-watchdog", daemon=True).start()
        return self

    def _watchdog(self) -> None:
        while not self._stopped.wait(0.1):
            now = time.monotonic()
            if (now - self._born > self.max_life_s or now - self._last > self.idle_s
                    or (self.watch is not None and not self.watch.exists())):
                self.stop()

    def stop(self) -> None:
        if self._httpd is not None and not self._stopped.is_set():
            self._stopped.set()
            self._httpd.shutdown()
            self._httpd.server_close()

    @property
    def running(self) -> bool:
        return self._httpd is not None and not self._stopped.is_set()

    def __enter__(self) -> "StandInServer":
        return self.start() if self._httpd is None else self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def synthetic_video(first: np.ndarray, last: np.ndarray | None, num: int, height: int, width: int,
                    shift_px: float = 0.0) -> np.ndarray:
    """What the stand-ins "generate": ``first`` resized to height x width, drifting right by up to
    ``shift_px`` pixels, cross-fading into ``last`` (when given) so the final frame is ``last``."""
    base = resize_frames(first[None], height, width)[0].astype(np.float32)
    end = resize_frames(last[None], height, width)[0].astype(np.float32) if last is not None else None
    out = np.empty((num, height, width, 3), np.uint8)
    for t in range(num):
        a = t / max(num - 1, 1)
        f = np.roll(base, int(round(a * shift_px)), axis=1)
        if end is not None:
            f = (1 - a) * f + a * end
        out[t] = np.clip(np.round(f), 0, 255).astype(np.uint8)
    return out


def encode_mp4(frames: np.ndarray, fps: float) -> bytes:
    """uint8 RGB frames -> mp4 bytes (H.264, high quality), via the io extra."""
    from d2f_plugins.video.file_video import write_video
    with tempfile.TemporaryDirectory(prefix="d2f-standin-") as tmp:
        p = Path(tmp) / "v.mp4"
        write_video(p, frames, fps)
        return p.read_bytes()

