"""Local stand-ins of remote services, for ``d2f check`` and tests (never shipped in a plugin).

* :class:`~d2f_conformance.standins.server.StandInServer`: the base, a threaded HTTP server on
  127.0.0.1 (random free port) that stops by itself.
* :class:`~d2f_conformance.standins.veo.VeoStandIn`: Google Veo's Gemini API and Vertex AI
  long-running-operation protocols (adapter ``veo3``).
* :class:`~d2f_conformance.standins.kling.KlingStandIn`: the Kling AI image2video protocol with
  JWT verification (adapter ``kling``); ``python -m d2f_conformance.standins.kling serve``.

The names are imported on first use, so ``import d2f_conformance.standins`` stays light.
"""

from __future__ import annotations

from typing import Any

_WHERE = {"StandInServer": "server", "Headers": "server", "SeenRequest": "server",
          "synthetic_video": "server", "encode_mp4": "server", "VeoStandIn": "veo",
          "KlingStandIn": "kling", "verify_jwt": "kling"}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
