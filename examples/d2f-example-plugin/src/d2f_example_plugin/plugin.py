"""Registration of the ``block-matching`` tracker (the module the entry point names).

This module is imported by ``d2f plugins`` for every installed plugin, so it stays light: it
declares the options model and the manifest; the tracker itself is imported by the factory.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from d2f_core import BuildContext, Manifest, hookimpl

NAME = "block-matching"


class BlockMatchingOptions(BaseModel):
    """Options of the ``block-matching`` tracker (``tracker: {plugin: block-matching, options: ...}``)."""

    model_config = ConfigDict(extra="forbid")

    patch: int = Field(9, ge=3, le=63,
                       description="side of the square template around each query point, pixels "
                                   "(odd: the point is the centre pixel)")
    search: int = Field(4, ge=1, le=32,
                        description="search radius around the previous position, pixels per frame "
                                    "(the largest motion between consecutive frames it can follow)")
    max_ssd_ratio: float = Field(0.5, gt=0,
                                 description="a point is invisible when its best SSD exceeds this "
                                             "fraction of the template energy (sum of squared "
                                             "mean-removed luminance, grey levels^2); dimensionless")

    @field_validator("patch")
    @classmethod
    def _odd(cls, v: int) -> int:
        if v % 2 == 0:
            raise ValueError(f"patch must be odd so the query point is its centre pixel; use {v + 1}")
        return v


def build(options: BlockMatchingOptions | None, ctx: BuildContext):
    """Factory: ``(options, ctx) -> tracker``. Imports the implementation only now."""
    from .block_matching import BlockMatchingTracker

    o = options or BlockMatchingOptions()
    return BlockMatchingTracker(patch=o.patch, search=o.search, max_ssd_ratio=o.max_ssd_ratio)


@hookimpl
def d2f_register(register):
    register(Manifest(
        name=NAME, kind="tracker", factory=build, options_model=BlockMatchingOptions,
        capabilities=frozenset({"deterministic"}),
        description="SSD block matching on luminance, sub-pixel by parabola fit (pure numpy)",
        verified="within 1 px of the true motion on the conformance box scene"))
