"""Run dream2flow's public conformance suite on the block-matching tracker.

``d2f_conformance.TrackerConformance`` holds the contract checks (dtypes, shapes, units, input
validation, no input mutation, determinism, declared capabilities); subclassing it with a
``component`` fixture runs all of them against this plugin. Run with
``pytest examples/d2f-example-plugin/tests`` (or ``d2f check block-matching``).
"""

from __future__ import annotations

import numpy as np
import pytest

from d2f_conformance import TrackerConformance
from d2f_conformance.scenes import standard_scene
from d2f_example_plugin.block_matching import BlockMatchingTracker


class TestBlockMatchingConformance(TrackerConformance):
    @pytest.fixture
    def component(self):
        return BlockMatchingTracker()


def test_follows_the_box_of_the_standard_scene():
    """Plugin-specific accuracy: box points queried on frame 0 end within 1 px of the truth."""
    scene = standard_scene()
    ys, xs = np.nonzero(scene.masks[0])
    queries = np.stack([np.zeros_like(xs), xs, ys], axis=1).astype(np.float32)
    truth, _ = scene.camera.project(scene.flow.points)          # T x N x 2 pixels
    tracks = BlockMatchingTracker().track(scene.video, queries)
    err = np.linalg.norm(tracks.xy - truth, axis=-1)
    assert err[-1].max() < 1.0
