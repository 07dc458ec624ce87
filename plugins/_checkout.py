"""Helpers for adapters that run an upstream source checkout (HaMeR, AnyGrasp, CoTracker,
SpatialTrackerV2): make it importable, and run code from inside it."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Iterator

__all__ = ["add_to_path", "in_dir"]


def add_to_path(d: Path | str) -> None:
    """Append checkout ``d`` to ``sys.path`` (once), so its packages import. Appended, never
    prepended: a user's checkout must not shadow the standard library or installed packages (a stray
    ``json.py`` or ``torch/`` in it would otherwise replace them for the whole process)."""
    if str(d) not in sys.path:
        sys.path.append(str(d))


@contextlib.contextmanager
def in_dir(d: Path | str | None) -> Iterator[None]:
    """Run the block with ``d`` as the working directory (for SDKs that read relative paths, such
    as AnyGrasp's ``license/`` or HaMeR's ``_DATA``); ``None`` stays where it is."""
    if d is None:
        yield
        return
    old = os.getcwd()
    os.chdir(d)
    try:
        yield
    finally:
        os.chdir(old)
