"""``lucas-kanade`` tracker against ground truth on synthetic sequences with known motion.

Frames are a smooth random RGB texture warped by cv2.warpAffine with known 2 x 3 matrices
(texture pixels -> frame pixels), plus Gaussian pixel noise; the true position of a query in
every frame follows from the matrices.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from d2f_core import Tracks2D, Video  # noqa: E402
from d2f_plugins.tracker.lucas_kanade import LucasKanadeOptions, LucasKanadeTracker  # noqa: E402

H, W = 240, 320


def texture(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.zeros((h, w, 3), np.float32)
    for c in range(3):
        for sigma, weight in ((8.0, 1.0), (3.5, 0.7), (1.5, 0.4)):
            out[..., c] += weight * sigma * cv2.GaussianBlur(rng.normal(size=(h, w)).astype(np.float32),
                                                             (0, 0), sigma)
    out = (out - out.mean((0, 1))) / out.std((0, 1))
    return np.clip(128 + 45 * out, 0, 255).astype(np.uint8)


def motion(t: float, velocity, omega_deg: float, centre, pad: int) -> np.ndarray:
    """2 x 3: texture pixel -> frame-t pixel (rotate omega*t about centre, translate velocity*t)."""
    a = np.deg2rad(omega_deg * t)
    R = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    c = np.asarray(centre, float)
    b = -R @ (np.array([pad, pad], float) + c) + c + np.asarray(velocity, float) * t
    return np.hstack([R, b[:, None]])


def sequence(T: int = 49, velocity=(0.37, -0.23), omega_deg: float = 0.1, noise: float = 2.0, seed: int = 0,
             occluder: tuple[int, int, int, int] | None = None):
    """(frames T x H x W x 3 uint8 RGB, maps). ``occluder`` (x0, y0, x1, y1) pastes a static patch of
    another texture over those pixels (inclusive-exclusive) in every frame."""
    pad = 200
    tex = texture(H + 2 * pad, W + 2 * pad, seed)
    occ = texture(H, W, seed + 100)
    rng = np.random.default_rng(seed + 1)
    centre = (W * 0.45, H * 0.55)
    frames, maps = np.empty((T, H, W, 3), np.uint8), []
    for t in range(T):
        A = motion(t, velocity, omega_deg, centre, pad)
        img = cv2.warpAffine(tex, A, (W, H), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        if occluder is not None:
            x0, y0, x1, y1 = occluder
            img[y0:y1, x0:x1] = occ[y0:y1, x0:x1]
        img = img.astype(np.float32) + rng.normal(0, noise, img.shape).astype(np.float32)
        frames[t] = np.clip(np.round(img), 0, 255).astype(np.uint8)
        maps.append(A)
    return Video(frames=frames, fps=8.0), maps


def truth(maps, queries: np.ndarray) -> np.ndarray:
    """T x N x 2 true positions of queries (t, x, y)."""
    out = np.empty((len(maps), len(queries), 2))
    for i, (t, x, y) in enumerate(queries):
        A = maps[int(t)]
        src = np.linalg.solve(A[:, :2], np.array([x, y]) - A[:, 2])
        out[:, i] = np.stack([M[:, :2] @ src + M[:, 2] for M in maps])
    return out


def grid(nx: int, ny: int, x0: float, x1: float, y0: float, y1: float, t: int = 0) -> np.ndarray:
    g = np.stack(np.meshgrid(np.linspace(x0, x1, nx), np.linspace(y0, y1, ny)), -1).reshape(-1, 2)
    return np.hstack([np.full((len(g), 1), t), g]).astype(np.float32)


def err(tracks: Tracks2D, gt: np.ndarray) -> np.ndarray:
    return np.linalg.norm(tracks.xy - gt, axis=-1)


@pytest.fixture(scope="module")
def moving():
    """49 frames: translation (0.37, -0.23) px/frame + rotation 0.1 deg/frame, noise sigma 2."""
    return sequence()


# ----------------------------------------------------------------------------- accuracy


def test_translating_rotating_plane_sub_pixel(moving):
    video, maps = moving
    q = grid(12, 9, 60, 260, 50, 190)
    tr = LucasKanadeTracker().track(video, q)
    gt = truth(maps, q)
    e = err(tr, gt)
    assert tr.visible.all()
    assert e.mean() < 0.1 and e.max() < 0.5, (e.mean(), e.max())
    # no accumulation: the last frame is as good as the first ones
    assert e[-1].mean() < 0.1
    assert np.array_equal(tr.xy[0], q[:, 1:])


def test_anchoring_bounds_drift(moving):
    """Without re-anchoring, the error grows frame by frame (LK's translation-only window is biased
    under rotation); anchored to the warped query-frame patch it does not."""
    video, maps = moving
    q = grid(10, 8, 60, 260, 50, 190)
    gt = truth(maps, q)
    anchored = err(LucasKanadeTracker().track(video, q), gt)
    chained = err(LucasKanadeTracker(LucasKanadeOptions(anchor_every=0)).track(video, q), gt)
    assert chained[-1].mean() > 0.15          # the drift is real on this sequence ...
    assert anchored[-1].mean() < 0.5 * chained[-1].mean()   # ... and anchoring removes most of it
    assert anchored[-1].mean() < 1.5 * anchored[5].mean() + 0.02


def test_long_video_error_stays_bounded():
    """200 frames (20 deg of rotation, 74 px of translation): the anchored error does not grow."""
    video, maps = sequence(T=200, noise=4.0, seed=2)
    q = grid(8, 6, 100, 220, 90, 170)
    gt = truth(maps, q)
    anchored = LucasKanadeTracker().track(video, q)
    chained = LucasKanadeTracker(LucasKanadeOptions(anchor_every=0)).track(video, q)
    ea, ec = err(anchored, gt), err(chained, gt)
    assert anchored.visible.mean() > 0.95
    late = ea[150:][anchored.visible[150:]]
    assert late.mean() < 0.15 and late.max() < 0.6, (late.mean(), late.max())
    assert ec[-1].mean() > 3 * ea[-1][anchored.visible[-1]].mean()


def test_large_rotation():
    """1 deg/frame (48 deg in total) plus translation: the warped template follows it."""
    video, maps = sequence(T=49, velocity=(0.2, 0.1), omega_deg=1.0, seed=3)
    q = grid(8, 6, 100, 200, 90, 170)
    tr = LucasKanadeTracker().track(video, q)
    e = err(tr, truth(maps, q))
    assert tr.visible[-1].mean() >= 0.9
    assert np.median(e[tr.visible]) < 0.2 and e[tr.visible].max() < 1.0, (np.median(e[tr.visible]),
                                                                           e[tr.visible].max())


def test_rendered_box_over_static_table():
    """The conformance scene at 320x240: a smoothly textured box slides ~34 px over a static table
    (perspective camera). Points 3+ px inside the box mask follow the true projection."""
    from d2f_conformance.scenes import standard_scene
    sc = standard_scene(width=320, height=240, num_frames=25, speed=0.004 * 8 / 25)
    ys, xs = np.nonzero(sc.masks[0])                     # the order of sc.flow's points
    inner = cv2.erode(sc.masks[0].astype(np.uint8), np.ones((7, 7), np.uint8))[ys, xs] > 0
    sel = np.nonzero(inner)[0][::7]
    q = np.stack([np.zeros(sel.size), xs[sel], ys[sel]], -1).astype(np.float32)
    gt = np.stack([sc.camera.project(sc.flow.points[t, sel])[0] for t in range(sc.video.num_frames)])
    tr = LucasKanadeTracker().track(sc.video, q)
    e = err(tr, gt)[tr.visible]
    assert np.median(gt[-1, :, 0] - gt[0, :, 0]) > 30
    assert tr.visible[-1].mean() > 0.6, tr.visible[-1].mean()
    assert e.mean() < 0.3 and np.percentile(e, 95) < 1.0, (e.mean(), np.percentile(e, 95))


def test_query_frames_other_than_zero(moving):
    """Queries on frames 24 and 48 are tracked backward to 0 (and forward to the end)."""
    video, maps = moving
    q = np.concatenate([grid(6, 4, 70, 250, 60, 180, t=24), grid(6, 4, 70, 250, 60, 180, t=48),
                        grid(3, 2, 100, 200, 80, 160, t=5)])
    tr = LucasKanadeTracker().track(video, q)
    n = np.arange(len(q))
    assert np.array_equal(tr.query_frame, q[:, 0].astype(np.int64))
    assert np.array_equal(tr.xy[q[:, 0].astype(int), n], q[:, 1:])
    e = err(tr, truth(maps, q))
    assert tr.visible.all()
    assert e.mean() < 0.1 and e.max() < 0.5, (e.mean(), e.max())


def test_rgb_not_bgr():
    """Only the red channel moves; a tracker reading BGR would weight the static blue texture."""
    video, maps = sequence(T=10, velocity=(1.0, 0.0), omega_deg=0.0)
    frames = np.array(video.frames)
    static = texture(H, W, 7)[..., 2]
    frames[..., 1] = 128
    frames[..., 2] = (128 + 0.45 * (static.astype(np.float32) - 128)).astype(np.uint8)
    q = grid(4, 3, 100, 220, 80, 160)
    tr = LucasKanadeTracker().track(Video(frames=frames, fps=8.0), q)
    e = err(tr, truth(maps, q))
    assert np.median(e[-1]) < 0.5


# ----------------------------------------------------------------------------- visibility


def test_points_leaving_the_image_become_invisible():
    video, maps = sequence(T=30, velocity=(3.0, 0.0), omega_deg=0.0)
    q = grid(10, 5, 160, 300, 60, 180)                    # right half: many leave by x = W
    tr = LucasKanadeTracker().track(video, q)
    gt = truth(maps, q)
    outside = gt[..., 0] > W - 0.5
    assert outside.any() and not tr.visible[outside].any()
    well_inside = gt[..., 0] < W - 15                       # a full LK window inside the image
    assert tr.visible[well_inside].mean() > 0.99
    e = err(tr, gt)
    assert e[tr.visible & well_inside].max() < 0.5
    assert e[tr.visible].max() < 1.5                        # a truncated window near the border
    # lost points keep their last visible position (never NaN)
    assert np.all(np.isfinite(tr.xy))
    for i in range(len(q)):
        vis = tr.visible[:, i]
        if not vis[-1]:
            s = len(vis) - np.argmax(vis[::-1])             # first frame of the final lost run
            assert np.all(tr.xy[s:, i] == tr.xy[s - 1, i])


OCC = (150, 60, 180, 200)   # x0, y0, x1, y1 of a static occluding patch


def _occluded(gt: np.ndarray, margin: float) -> np.ndarray:
    x0, y0, x1, y1 = OCC
    x, y = gt[..., 0], gt[..., 1]
    return (x > x0 - 0.5 - margin) & (x < x1 - 0.5 + margin) & (y > y0 - 0.5 - margin) & (y < y1 - 0.5 + margin)


@pytest.fixture(scope="module")
def occlusion():
    """The plane slides right 2 px/frame under a static patch of another texture."""
    video, maps = sequence(T=49, velocity=(2.0, 0.0), omega_deg=0.0, occluder=OCC)
    # left of the patch (20+ px: their query windows do not touch it); the middle rows pass under
    # it, the top and bottom rows above and below it
    q = grid(5, 10, 100, 130, 20, 225)
    return video, q, truth(maps, q)


def test_occluded_points_are_invisible_then_reacquired(occlusion):
    video, q, gt = occlusion
    tr = LucasKanadeTracker().track(video, q)
    under = _occluded(gt, -3.0)                           # centre at least 3 px inside the patch
    clear = ~_occluded(gt, 12.0)                          # window entirely off the patch
    assert under.sum() > 100
    assert tr.visible[under].mean() < 0.02, tr.visible[under].mean()
    emerged = clear & (gt[..., 0] > OCC[2])               # past the patch, fully clear of it
    assert emerged.sum() > 100
    assert tr.visible[emerged].mean() > 0.9, tr.visible[emerged].mean()
    e = err(tr, gt)
    assert np.median(e[tr.visible & clear]) < 0.1
    assert e[tr.visible & clear].max() < 1.0


def test_without_reacquisition_lost_points_stay_lost(occlusion):
    video, q, gt = occlusion
    tr = LucasKanadeTracker(LucasKanadeOptions(reacquire=False)).track(video, q)
    for i in range(len(q)):
        lost = np.nonzero(~tr.visible[:, i])[0]
        if not lost.size:
            continue
        s = lost[0]
        assert not tr.visible[s:, i].any()
        assert np.all(tr.xy[s:, i] == tr.xy[s - 1, i])   # last visible position, never NaN
    under = _occluded(gt, -3.0)
    assert tr.visible[under].mean() < 0.01  # a few point-frames may stick to the occluder's edge
    strict = LucasKanadeTracker(LucasKanadeOptions(reacquire=False, lose_on_anchor_reject=True)).track(video, q)
    assert not strict.visible[under].any()  # losing a point whenever its re-anchoring fails: none


def test_occluder_appearing_and_disappearing():
    """A patch covers the points on frames 15-24 only: invisible there, visible again afterwards."""
    video, maps = sequence(T=40, velocity=(0.5, 0.3), omega_deg=0.2, seed=5)
    frames = np.array(video.frames)
    frames[15:25, 60:190, 80:250] = texture(130, 170, 42)
    q = grid(6, 5, 120, 210, 100, 150)
    tr = LucasKanadeTracker().track(Video(frames=frames, fps=8.0), q)
    gt = truth(maps, q)
    assert not tr.visible[15:25].any()
    assert tr.visible[:15].all()
    assert tr.visible[25:].mean() > 0.95
    e = err(tr, gt)
    assert e[25:][tr.visible[25:]].max() < 0.5


# ----------------------------------------------------------------------------- contract


def test_deterministic_and_input_unchanged(moving):
    video, _ = moving
    q = grid(5, 4, 80, 240, 60, 180)
    frames_before = np.array(video.frames)
    q_before = q.copy()
    a = LucasKanadeTracker().track(video, q)
    b = LucasKanadeTracker().track(video, q)
    assert np.array_equal(a.xy, b.xy) and np.array_equal(a.visible, b.visible)
    assert np.array_equal(video.frames, frames_before) and np.array_equal(q, q_before)
    assert a.xy.dtype == np.float32 and a.visible.dtype == np.bool_ and a.query_frame.dtype == np.int64


def test_tiny_video_and_no_queries():
    video, maps = sequence(T=2, velocity=(0.5, 0.0), omega_deg=0.0)
    small = Video(frames=np.ascontiguousarray(video.frames[:, :40, :48]), fps=8.0)
    q = np.array([[0, 20, 20], [1, 25, 18]], np.float32)
    tr = LucasKanadeTracker().track(small, q)
    assert tr.xy.shape == (2, 2, 2) and np.all(np.isfinite(tr.xy))
    empty = LucasKanadeTracker().track(small, np.zeros((0, 3), np.float32))
    assert empty.xy.shape == (2, 0, 2)


def test_rejects_bad_queries(moving):
    video, _ = moving
    with pytest.raises(ValueError, match="queries"):
        LucasKanadeTracker().track(video, np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError, match="queries"):
        LucasKanadeTracker().track(video, np.array([[49, 10, 10]], np.float32))
    with pytest.raises(ValueError, match="video"):
        LucasKanadeTracker().track(np.array(video.frames), np.array([[0, 10, 10]], np.float32))


def test_options_validated():
    from pydantic import ValidationError
    with pytest.raises(ValidationError, match="window_sz"):
        LucasKanadeOptions(window_sz=15)
    with pytest.raises(ValidationError, match="odd"):
        LucasKanadeOptions(ncc_window_px=10)
    with pytest.raises(ValidationError):
        LucasKanadeOptions(fb_threshold_px=0)
    with pytest.raises(ValidationError, match="smaller than window_px"):
        LucasKanadeOptions(window_px=15, consistency_window_px=15)
    assert LucasKanadeOptions(window_px=9).small_window < 9


def test_registered_and_built_through_registry():
    from d2f_core.registry import OptionsError, Registry
    reg = Registry()
    entry = reg.get("tracker", "lucas-kanade")
    assert entry.manifest.extra == "cv" and "cv2" in entry.manifest.requires
    assert reg.unavailable_reason(entry.manifest) is None
    tracker = reg.create("tracker", "lucas-kanade", {"anchor_every": 4})
    assert tracker.options.anchor_every == 4
    with pytest.raises(OptionsError, match="anchor_evry"):
        reg.create("tracker", "lucas-kanade", {"anchor_evry": 4})


def test_missing_opencv_names_the_extra(monkeypatch):
    from d2f_core.registry import PluginError
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(PluginError, match=r"dream2flow\[cv\]"):
        LucasKanadeTracker()
