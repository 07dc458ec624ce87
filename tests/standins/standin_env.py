"""Put stand-in packages on ``sys.path`` for one test and forget them (and anything an adapter
added to ``sys.path``) afterwards, so availability checks in other tests see a clean process."""

from __future__ import annotations

import contextlib
import importlib
import sys
from pathlib import Path
from typing import Iterator

STANDINS = Path(__file__).resolve().parent


@contextlib.contextmanager
def standin_modules(*folders: str | Path) -> Iterator[None]:
    folders_ = [Path(f).resolve() for f in folders]
    before = set(sys.modules)
    old_path = list(sys.path)
    for f in reversed(folders_):
        sys.path.insert(0, str(f))
    importlib.invalidate_caches()
    try:
        yield
    finally:
        sys.path[:] = old_path
        for name in set(sys.modules) - before:
            mod = sys.modules.get(name)
            where = str(getattr(mod, "__file__", None) or "")
            paths = [str(p) for p in (getattr(mod, "__path__", None) or [])]
            if where.startswith(str(STANDINS)) or any(p.startswith(str(STANDINS)) for p in paths) or \
                    any(where.startswith(str(f)) for f in folders_):
                del sys.modules[name]
        importlib.invalidate_caches()
