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
        roots = [str(STANDINS)] + [str(f) for f in folders_]
        doomed = []
        for name in sorted(set(sys.modules) - before):  # decide first: namespace paths need their parents
            mod = sys.modules.get(name)
            where = [str(getattr(mod, "__file__", None) or "")]
            try:
                where += [str(p) for p in (getattr(mod, "__path__", None) or [])]
            except (KeyError, AttributeError):
                pass
            if any(w.startswith(r) for w in where if w for r in roots):
                doomed.append(name)
        for name in doomed:
            sys.modules.pop(name, None)
        sys.path[:] = old_path
        importlib.invalidate_caches()
