"""Size caps for array files read from outside (flow files, scene depth, cached artifacts).

A small ``.npz`` can expand to gigabytes (it is a zip of compressed arrays) and a ``.npy`` header
can claim any shape: both are checked before any array is read. The cap is the caller's (flow files:
256 MiB) or 4 GiB; ``D2F_MAX_ARRAY_BYTES`` (bytes), when set, replaces it either way. Only numpy and the
standard library.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from .types import DataError

DEFAULT_MAX_BYTES = 4 << 30


def max_array_bytes(default: int | None = None) -> int:
    """The cap in force: ``D2F_MAX_ARRAY_BYTES`` when set to a positive integer, else ``default`` (4 GiB)."""
    default = DEFAULT_MAX_BYTES if default is None else int(default)
    raw = os.environ.get("D2F_MAX_ARRAY_BYTES", "")
    try:
        value = int(raw)
    except ValueError:
        return default
    return value if value > 0 else default


def _human(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _too_big(path: Path, size: int, limit: int, what: str) -> DataError:
    return DataError(f"{path}: {what} {_human(size)}, over the {_human(limit)} cap on array files; if the file is "
                     "genuine, raise the cap with D2F_MAX_ARRAY_BYTES=<bytes>")


def npy_header_bytes(f) -> int:
    """Bytes of the array a ``.npy`` stream's header declares (the stream is left after the header)."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        shape, _, dtype = np.lib.format._read_array_header(f, version)  # noqa: SLF001 - 3.0 headers
    return int(np.prod(shape, dtype=np.int64)) * int(dtype.itemsize)


def check_array_file(path: str | Path, limit: int | None = None) -> None:
    """Raise DataError when ``path`` (.npz, .npy, .pt or any other file) would load to more than
    ``limit`` bytes (default 4 GiB; D2F_MAX_ARRAY_BYTES replaces it). Unreadable headers are left to the
    loader."""
    p = Path(path)
    limit = max_array_bytes(limit)
    try:
        size = p.stat().st_size
    except OSError:
        return
    if size > limit:
        raise _too_big(p, size, limit, "the file is")
    suffix = p.suffix.lower()
    if zipfile.is_zipfile(p):  # .npz, and torch's .pt (a zip of stored tensors)
        try:
            with zipfile.ZipFile(p) as z:
                total = 0
                for info in z.infolist():
                    total += info.file_size
                    if info.filename.endswith(".npy"):
                        try:
                            with z.open(info) as f:
                                total = max(total, npy_header_bytes(f))
                        except Exception:  # noqa: BLE001 - a bad header is the loader's error to report
                            pass
        except zipfile.BadZipFile:
            return
        if total > limit:
            raise _too_big(p, total, limit, "the arrays expand to")
    elif suffix == ".npy":
        try:
            with open(p, "rb") as f:
                declared = npy_header_bytes(f)
        except Exception:  # noqa: BLE001
            return
        if declared > limit:
            raise _too_big(p, declared, limit, "the header declares an array of")
