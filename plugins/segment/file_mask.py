"""``file`` segmenter: the object mask is read from an image file (nonzero = object).

Any Pillow-readable image (PNG recommended; JPG compression blurs mask edges) or a ``.npy``
H x W array. For colour images a pixel is object when any colour channel is nonzero; when the
image has an alpha channel, fully transparent pixels are background. The text prompt is ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from d2f_core import DataError, Manifest, hookimpl
from d2f_core.validate import check_image

__all__ = ["FileMaskOptions", "FileMaskSegmenter", "read_mask"]


class FileMaskOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="mask image (PNG; nonzero pixels = object) or .npy H x W array, "
                                  "the same width and height as the segmented image (pixels)")


def read_mask(path: str | Path) -> np.ndarray:
    """Read ``path`` -> bool H x W (True = object). Raises DataError naming the path."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"mask file not found: {p} (segmenter.options.path); give an existing PNG "
                        "mask (nonzero = object)")
    if p.suffix.lower() == ".npy":
        from d2f_core.safeload import check_array_file
        check_array_file(p)
        try:
            a = np.load(p, allow_pickle=False)
        except Exception as e:  # noqa: BLE001
            raise DataError(f"{p}: not a readable .npy file ({type(e).__name__}: {e})") from None
        if a.ndim != 2:
            raise DataError(f"{p}: expected an H x W mask array, got shape {a.shape}")
        return np.asarray(a != 0)
    try:
        from PIL import Image
    except ImportError:
        raise DataError(f"reading {p} needs pillow (not installed): pip install 'dream2flow[io]'") from None
    try:
        with Image.open(p) as im:
            im.load()
            mode = im.mode
            if mode == "P":  # palette: judge by colour, not by index
                im = im.convert("RGBA")
                mode = "RGBA"
            a = np.asarray(im)
    except Exception as e:  # noqa: BLE001
        raise DataError(f"{p}: cannot read as an image ({type(e).__name__}: {e})") from None
    if a.ndim == 2:
        return a != 0
    if mode in ("LA", "La", "PA"):
        return (a[..., 0] != 0) & (a[..., 1] != 0)
    if a.shape[-1] == 4:
        return np.any(a[..., :3] != 0, axis=-1) & (a[..., 3] != 0)
    return np.any(a != 0, axis=-1)


class FileMaskSegmenter:
    """Returns the mask in the file, checked against the image size. Ignores the text."""

    name = "file"
    kind = "segmenter"
    capabilities = frozenset({"stand_in", "deterministic"})
    Options = FileMaskOptions
    extra = "io"  # .npy masks need nothing; PNG says to install the io extra
    description = "object mask read from a PNG file (nonzero = object)"
    verified = "PNG round trip and error cases in tests"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise DataError(f"mask file not found: {self.path} (segmenter.options.path); give an "
                            "existing PNG mask (nonzero = object)")
        self._cache: np.ndarray | None = None

    def _load(self) -> np.ndarray:
        if self._cache is None:
            mask = read_mask(self.path)
            mask.flags.writeable = False
            self._cache = mask
        return self._cache

    def segment(self, image: np.ndarray, text: str, *, points: np.ndarray | None = None,
                labels: np.ndarray | None = None) -> np.ndarray:
        img = check_image(image, "image")
        if points is not None or labels is not None:
            raise ValueError("points/labels: the 'file' segmenter has no point_prompts capability "
                             "(it reads a fixed mask); pass points=None, labels=None or choose a "
                             "segmenter that declares point_prompts")
        if not isinstance(text, str):
            raise ValueError(f"text: expected a string naming the object, got {type(text).__name__}")
        mask = self._load()
        h, w = img.shape[:2]
        if mask.shape != (h, w):
            raise ValueError(f"{self.path}: mask is {mask.shape[1]}x{mask.shape[0]} (W x H) but the image is "
                             f"{w}x{h}; resize the mask to the image size with nearest-neighbour "
                             "interpolation (e.g. PIL Image.resize((W, H), Image.NEAREST))")
        if not mask.any():
            raise ValueError(f"{self.path}: mask is empty (no nonzero pixels); object pixels must be "
                             "nonzero")
        return np.array(mask, dtype=bool)


def _factory(options: FileMaskOptions, ctx: Any = None) -> FileMaskSegmenter:
    if options is None:
        raise DataError("segmenter.options.path: the 'file' segmenter needs a mask path")
    return FileMaskSegmenter(options.path)


@hookimpl
def d2f_register(register):
    register(Manifest.of(FileMaskSegmenter, factory=_factory))
