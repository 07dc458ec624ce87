"""``no-hands`` hand detector: reports no hand in any frame.

The no-hand fallback of grasp choice (the grasp is then chosen without the thumb-tip cue), and
a test double for everything downstream of hand detection.
"""

from __future__ import annotations

import numpy as np

from d2f_core import HandTrack, Manifest, Video, hookimpl
from d2f_core.validate import check_video

__all__ = ["NoHandsDetector"]


class NoHandsDetector:
    """``detect(video)``: ``present`` all False, keypoints (T x 21 x 2 pixels) all NaN."""

    name = "no-hands"
    kind = "hand"
    capabilities = frozenset({"deterministic"})
    description = "no hand in any frame (grasp choice falls back to no thumb-tip cue)"
    verified = "shapes and NaN keypoints in tests"

    def detect(self, video: Video) -> HandTrack:
        check_video(video, "video")
        T = video.num_frames
        return HandTrack(keypoints=np.full((T, 21, 2), np.nan, np.float32), present=np.zeros(T, bool))


@hookimpl
def d2f_register(register):
    register(Manifest.of(NoHandsDetector))
