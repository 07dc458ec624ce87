"""``zero-motion`` tracker: every point stays where it was queried, always visible.

A real, exact tracker for static scenes and a test double for everything downstream of
tracking (a flow from it is the object standing still).
"""

from __future__ import annotations

import numpy as np

from d2f_core import Manifest, Tracks2D, Video, hookimpl
from d2f_core.validate import check_queries, check_video


class ZeroMotionTracker:
    name = "zero-motion"
    kind = "tracker"
    capabilities = frozenset({"zero_motion", "deterministic", "stand_in"})
    description = "every point stays where it was queried (static scenes, test double)"
    verified = "exact on static synthetic videos"

    def track(self, video: Video, queries: np.ndarray) -> Tracks2D:
        check_video(video, "video")
        q = check_queries(queries, video)
        T, n = video.num_frames, q.shape[0]
        xy = np.broadcast_to(q[None, :, 1:3], (T, n, 2)).astype(np.float32)
        return Tracks2D(xy=xy, visible=np.ones((T, n), bool), query_frame=q[:, 0].astype(np.int64))


@hookimpl
def d2f_register(register):
    register(Manifest.of(ZeroMotionTracker))
