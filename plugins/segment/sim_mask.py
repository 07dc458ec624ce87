"""``sim-mask`` segmenter: the simulator's mask of the named object (a STAND-IN for Grounded-SAM).

``segment(image, text)`` returns the world's segmentation of the object or movable part named
by ``text`` ("door", "handle", "oven door", "bread", "bowl", ...; case, articles and the world's
aliases are forgiven, and a longer phrase is searched for a known name) in the world's current
state, i.e. the observed first frame right after ``reset``, robot visible (it may occlude). The
pixels of ``image`` are not looked at; the mask is resized (nearest) to the image's size.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import numpy as np
from pydantic import Field

from d2f_core import Manifest, hookimpl
from d2f_core.validate import check_image

from d2f_plugins.world.robosuite_world import SIM_INSTALL, SIM_REQUIRES, StandInOptions, oracle_world

__all__ = ["SimMaskOptions", "SimMaskSegmenter"]


class SimMaskOptions(StandInOptions):
    unknown_text: Literal["error", "task_object"] = Field(
        default="error", description="text naming no object of the world: 'error' raises ValueError; "
                                     "'task_object' returns the task object's mask instead")


class SimMaskSegmenter:
    """``segment(image, text)``: the world's mask of the named object."""

    name = "sim-mask"
    kind = "segmenter"
    capabilities = frozenset({"stand_in", "deterministic", "text_prompt"})
    Options = SimMaskOptions
    extra, requires, install = "sim", SIM_REQUIRES, SIM_INSTALL
    description = ("STAND-IN for a text-prompted segmenter: the simulator's mask of the named object or "
                   "movable part")
    verified = "masks equal the renderer's segmentation of the named geoms"

    def __init__(self, world: Any, options: SimMaskOptions | None = None) -> None:
        self.world = world
        self.options = options or SimMaskOptions()

    def _name(self, text: str) -> str:
        w = self.world
        try:
            return w.resolve_name(text)
        except ValueError as e:
            words = " " + re.sub(r"[^a-z0-9]+", " ", text.lower()) + " "
            known = list(getattr(w.spec, "names", {})) + list(getattr(w.spec, "aliases", {}))
            hits = sorted((k for k in known if f" {k.lower()} " in words), key=len, reverse=True)
            if hits:
                return w.resolve_name(hits[0])
            if self.options.unknown_text == "task_object":
                return w.task.object
            raise ValueError(f"text: {e}".replace("name: ", "", 1)) from None

    def segment(self, image: np.ndarray, text: str, *, points: np.ndarray | None = None,
                labels: np.ndarray | None = None) -> np.ndarray:
        img = check_image(image, "image")
        if points is not None or labels is not None:
            raise ValueError("points: sim-mask takes no point prompts (the simulator knows the object); drop "
                             "points/labels")
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"text: expected the object's name, e.g. {self.world.task.object!r}, got {text!r}")
        mask = np.asarray(self.world.object_mask(self._name(text)), dtype=bool)
        H, W = img.shape[:2]
        if mask.shape != (H, W):
            ys = np.clip(((np.arange(H) + 0.5) * mask.shape[0] / H).astype(np.int64), 0, mask.shape[0] - 1)
            xs = np.clip(((np.arange(W) + 0.5) * mask.shape[1] / W).astype(np.int64), 0, mask.shape[1] - 1)
            mask = mask[ys[:, None], xs[None, :]]
        return np.array(mask, dtype=bool)


def _factory(options: SimMaskOptions | None, ctx: Any = None) -> SimMaskSegmenter:
    """The run's world (or a robosuite world of ``options.task`` when the run has none)."""
    options = options or SimMaskOptions()
    return SimMaskSegmenter(oracle_world(ctx, options, SimMaskSegmenter.name), options)


@hookimpl
def d2f_register(register):
    register(Manifest.of(SimMaskSegmenter, factory=_factory))
