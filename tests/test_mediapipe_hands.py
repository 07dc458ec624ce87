"""``mediapipe-hands``: the conversion path with a fake MediaPipe result (no mediapipe needed), and
the real model (mediapipe 0.10.14, its hand model inside the wheel) on a rendered hand."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from d2f_conformance import check_plugin, format_results, make_env
from d2f_conformance.checks.common import check_model_input_convention
from d2f_core import Video
from d2f_plugins.hand import mediapipe_hands as mh


def landmarks(points):
    return SimpleNamespace(landmark=[SimpleNamespace(x=x, y=y, z=0.0) for x, y in points])


def handedness(score):
    return SimpleNamespace(classification=[SimpleNamespace(score=score, label="Right", index=1)])


class FakeHands:
    """Records the frames it gets; frame t's result is ``results[t]``."""

    def __init__(self, results):
        self.results, self.frames, self.closed = results, [], False

    def process(self, image):
        self.frames.append(image)
        return self.results[len(self.frames) - 1]

    def close(self):
        self.closed = True


def test_landmarks_become_pixels_and_the_best_hand_wins():
    H, W = 40, 60
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, H, W, 3), dtype=np.uint8)
    a = rng.uniform(0.1, 0.9, (21, 2))
    b = rng.uniform(0.1, 0.9, (21, 2))
    results = [SimpleNamespace(multi_hand_landmarks=[landmarks(a)], multi_handedness=[handedness(0.9)]),
               SimpleNamespace(multi_hand_landmarks=None, multi_handedness=None),
               SimpleNamespace(multi_hand_landmarks=[landmarks(a), landmarks(b)],
                               multi_handedness=[handedness(0.6), handedness(0.95)])]
    fake = FakeHands(results)
    tr = mh.MediaPipeHandsDetector(lambda: fake).detect(Video(frames=frames))
    assert tr.present.tolist() == [True, False, True]
    assert np.allclose(tr.keypoints[0], a * [W, H] - 0.5, atol=1e-4)     # normalised -> pixel centres
    assert np.isnan(tr.keypoints[1]).all()
    assert np.allclose(tr.keypoints[2], b * [W, H] - 0.5, atol=1e-4)     # the more confident hand
    assert np.allclose(tr.thumb_tip[0], a[4] * [W, H] - 0.5, atol=1e-4)  # index 4 = thumb tip
    for t, got in enumerate(fake.frames):                                 # RGB frames, unchanged
        assert got.dtype == np.uint8 and got.flags.c_contiguous and np.array_equal(got, frames[t])
    assert fake.closed


def test_model_input_convention(tmp_path):
    det = mh.MediaPipeHandsDetector(lambda: None)
    check_model_input_convention(det, make_env(tmp_path), "hand")  # raises CheckFailed when wrong


# --------------------------------------------------------------------------- the real model


@pytest.fixture(scope="module")
def real():
    pytest.importorskip("mediapipe")
    pytest.importorskip("PIL")
    return mh._factory(mh.MediaPipeHandsOptions())


def test_real_model_finds_a_rendered_hand_and_its_thumb(real):
    from standins.hand_image import render_hand

    frames, tips = [], []
    for dx in (0, 24, 48):
        rgb, tip = render_hand(cx=140 + dx)
        frames.append(rgb)
        tips.append(tip)
    frames.append(np.full_like(frames[0], 235))       # no hand
    video = Video(frames=np.stack(frames))
    tr = real.detect(video)
    assert tr.present.tolist() == [True, True, True, False]
    err = np.linalg.norm(tr.thumb_tip[:3] - np.array(tips), axis=1)
    assert err.max() < 6.0, (tr.thumb_tip, tips)
    assert np.allclose(np.diff(tr.thumb_tip[:3, 0]), 24.0, atol=3.0)
    assert tr.keypoints[0, 0, 1] > tr.keypoints[0, 12, 1] + 50     # wrist below the middle fingertip
    # channel order matters to the model: the same video read as BGR shows no hand at all, so the
    # adapter must hand MediaPipe the RGB frames unchanged
    assert not real.detect(Video(frames=np.ascontiguousarray(video.frames[..., ::-1]))).present.any()


def test_d2f_check_with_the_real_model(real):
    res = check_plugin("mediapipe-hands", "hand")
    assert all(r.status == "passed" for r in res), format_results(res)
