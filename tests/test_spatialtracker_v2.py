"""``spatialtracker-v2`` adapter against the SpaTrackerV2 stand-in (tests/standins/spatrackerv2),
which follows the repository's inference.py API; its depth is 1 + r + 0.5 g + 0.25 b of the
frame's 0-1 RGB only when the front end gets 0-1 RGB and the predictor 0-255 RGB."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from d2f_conformance import check_component, check_plugin, format_results  # noqa: E402
from d2f_core import DataError, Video  # noqa: E402
from d2f_core.registry import PluginUnavailableError, get_registry  # noqa: E402
from d2f_plugins.depth import spatialtracker_v2 as st  # noqa: E402
from standins.standin_env import STANDINS, standin_modules  # noqa: E402

STANDIN = STANDINS / "spatrackerv2"


@pytest.fixture
def weights(tmp_path, monkeypatch):
    monkeypatch.setenv("SPATRACKERV2_DIR", str(STANDIN))
    (tmp_path / "front").mkdir()
    (tmp_path / "offline").mkdir()
    (tmp_path / "offline" / "config.json").write_text("{}")
    with standin_modules(STANDIN):
        yield {"weights": str(tmp_path / "offline"), "front_weights": str(tmp_path / "front")}


def expected_depth(frames: np.ndarray) -> np.ndarray:
    f = frames.astype(np.float64) / 255.0
    return 1.0 + f[..., 0] + 0.5 * f[..., 1] + 0.25 * f[..., 2]


def block_video(H=48, W=64, T=3) -> Video:
    """Large flat colour blocks (interiors survive resampling exactly) and a white block."""
    frame = np.zeros((H, W, 3), np.uint8)
    frame[:, : W // 2] = (200, 40, 10)
    frame[:, W // 2:] = (30, 60, 220)
    frame[H // 2:, : W // 4] = (250, 250, 250)  # nearly white: the front end is unsure there
    return Video(frames=np.stack([frame] * T))


def test_unavailable_without_checkout(monkeypatch, tmp_path):
    monkeypatch.delenv("SPATRACKERV2_DIR", raising=False)
    if st._importable():
        pytest.skip("SpaTrackerV2 is importable here")
    reason = get_registry().unavailable_reason(get_registry().get("depth", "spatialtracker-v2").manifest)
    assert "SPATRACKERV2_DIR" in reason and "github.com/henry123-boy/SpaTrackerV2" in reason
    monkeypatch.setenv("SPATRACKERV2_DIR", str(tmp_path / "missing"))
    assert "not a SpaTrackerV2 checkout" in st._available()


def test_missing_weights_is_one_clear_line(weights, tmp_path):
    with pytest.raises(PluginUnavailableError) as e:
        get_registry().create("depth", "spatialtracker-v2", {})
    msg = str(e.value)
    assert "\n" not in msg and "depth.options.weights" in msg and "depth.options.front_weights" in msg
    with pytest.raises(DataError, match="depth.options.front_weights"):
        get_registry().create("depth", "spatialtracker-v2", dict(weights, front_weights=str(tmp_path / "missing.pth")))


def test_conformance_passes_on_the_standin(weights):
    res = check_plugin("spatialtracker-v2", "depth", options=weights)
    assert not [r for r in res if r.status == "failed"], format_results(res)
    assert {r.check for r in res if r.status == "passed"} >= {"depth_output_types", "model_input_convention"}


def test_depth_is_point_map_z_with_low_confidence_invalid(weights):
    est = st._factory(st.SpatialTrackerV2Options(**weights))
    video = block_video()
    out = est.estimate(video)
    assert out.metric is False and out.depth.shape == (3, 48, 64) and out.depth.dtype == np.float32
    want = expected_depth(video.frames)
    interior = np.zeros((48, 64), bool)
    interior[4:20, 4:28] = interior[4:44, 36:60] = True
    assert np.allclose(out.depth[:, interior], want[:, interior], atol=2e-3)
    assert np.all(out.depth[:, 28:44, 2:12] == 0)                    # white: low confidence -> invalid
    # the conversions are what make it right: swapped channels would give other numbers
    assert not np.allclose(want[:, interior], expected_depth(video.frames[..., ::-1])[:, interior], atol=0.1)


def test_tall_video_crop_is_undone(weights):
    """preprocess_image keeps the centre 518 rows of a tall frame: the rows it cut are invalid and
    the rest sits where it belongs."""
    est = st._factory(st.SpatialTrackerV2Options(**weights))
    H, W = 64, 40
    frame = np.zeros((H, W, 3), np.uint8)
    frame[: H // 2] = (220, 30, 30)
    frame[H // 2:] = (20, 200, 40)
    out = est.estimate(Video(frames=np.stack([frame] * 2)))
    # resized height round(64 * 518 / 40 / 14) * 14 = 826 rows, the centre 518 kept: rows ~12..52
    assert np.all(out.depth[:, :11] == 0) and np.all(out.depth[:, 53:] == 0)
    want = expected_depth(frame[None])[0]
    assert np.allclose(out.depth[:, 14:29], want[14:29], atol=2e-3)
    assert np.allclose(out.depth[:, 35:51], want[35:51], atol=2e-3)


class BGRInput(st.SpatialTrackerV2Depth):
    """The official release's mistake: gives SpatialTrackerV2 BGR frames."""

    def model_input(self, video):
        return super().model_input(video).flip(1)


def test_bgr_frames_are_caught(weights):
    good = st._factory(st.SpatialTrackerV2Options(**weights))
    bad = BGRInput(good.predictor, good.front, good.preprocess, good.options)
    res = {r.check: r for r in check_component(bad, "depth", only=["model_input_convention"])}
    assert res["model_input_convention"].status == "failed"
    assert "model input is BGR but the model expects RGB" in res["model_input_convention"].message
    video = block_video()
    assert not np.allclose(bad.estimate(video).depth[:, 8, 8], expected_depth(video.frames)[:, 8, 8], atol=0.05)


def test_model_input_is_rgb_0_255_tchw(weights):
    est = st._factory(st.SpatialTrackerV2Options(**weights))
    video = block_video()
    x = est.model_input(video)
    assert tuple(x.shape) == (3, 3, 48, 64) and x.dtype == torch.float32
    assert np.array_equal(x.permute(0, 2, 3, 1).numpy(), video.frames.astype(np.float32))


# --------------------------------------------------------------------------- geometry from config, chunks


def test_geometry_comes_from_the_front_end_config(weights, tmp_path):
    """The front weights' config.json says img_size 266 (19 patches of 14): preprocess_image is asked
    for that width, and the crop of a tall video is undone with it."""
    import json
    (tmp_path / "front" / "config.json").write_text(json.dumps({"img_size": 266, "patch_size": 14, "embed_dim": 8}))
    est = st._factory(st.SpatialTrackerV2Options(**weights))
    assert (est.img_size, est.patch_size) == (266, 14) and "config" in est.geometry_source
    seen = []
    pre = est.preprocess
    est.preprocess = lambda x, **kw: (seen.append(kw), pre(x, **kw))[1]
    H, W = 64, 40
    frame = np.zeros((H, W, 3), np.uint8)
    frame[: H // 2] = (220, 30, 30)
    frame[H // 2:] = (20, 200, 40)
    out = est.estimate(Video(frames=np.stack([frame] * 2)))
    assert seen[0]["target_size"] == 266 and seen[0]["mode"] == "crop"
    # resized height round(64 * 266 / 40 / 14) * 14 = 420 rows, the centre 266 kept: rows 11.7..52.3
    assert np.all(out.depth[:, :11] == 0) and np.all(out.depth[:, 53:] == 0)
    want = expected_depth(frame[None])[0]
    assert np.allclose(out.depth[:, 14:29], want[14:29], atol=2e-3)
    assert np.allclose(out.depth[:, 35:51], want[35:51], atol=2e-3)
    # without a config: the class's own defaults (518 / 14), said so
    assert st.front_geometry(object(), type(est.front))[:2] == (518, 14)


def test_geometry_mismatch_is_refused(weights, tmp_path):
    import json
    (tmp_path / "front" / "config.json").write_text(json.dumps({"img_size": 256, "patch_size": 16}))
    est = st._factory(st.SpatialTrackerV2Options(**weights))
    with pytest.raises(Exception, match="not the width 256 / multiple of 16"):
        est.estimate(block_video())  # the checkout's preprocess_image rounds heights to 14


def test_chunked_depth_is_stitched_at_one_scale(weights):
    """10 frames in chunks of 4 overlapping by 2 (spans 0-4, 2-6, 4-8, 6-10); each chunk's run gets
    its own scale (1, 2, 0.5, 3: SpaTrackerV2's depth is up to scale): the stitched video is at the
    first chunk's scale everywhere, i.e. the true depth per colour."""
    est = st._factory(st.SpatialTrackerV2Options(chunk_frames=4, chunk_overlap=2, **weights))
    factors = iter([1.0, 2.0, 0.5, 3.0])
    fwd = est.predictor.forward

    def scaled(*a, **k):
        out = list(fwd(*a, **k))
        f = next(factors)
        out[2] = out[2] * f
        return tuple(out)

    est.predictor.forward = scaled
    rng = np.random.default_rng(0)
    frames = np.zeros((10, 48, 64, 3), np.uint8)
    for t in range(10):  # each frame its own two flat colours
        frames[t, :, :32] = rng.integers(20, 230, 3)
        frames[t, :, 32:] = rng.integers(20, 230, 3)
    out = est.estimate(Video(frames=frames))
    assert est.last_chunks == [(0, 4), (2, 6), (4, 8), (6, 10)]
    assert np.allclose(est.last_scales, [1.0, 0.5, 2.0, 1 / 3.0], rtol=1e-4)
    want = expected_depth(frames)
    interior = np.zeros((48, 64), bool)
    interior[4:44, 4:28] = interior[4:44, 36:60] = True
    assert np.allclose(out.depth[:, interior], want[:, interior], atol=3e-3)
    assert "4 chunks" in out.model
    assert st.chunk_spans(10, None, 2) == [(0, 10)] and st.chunk_spans(5, 8, 2) == [(0, 5)]
    with pytest.raises(ValueError, match="chunk_overlap"):
        st.SpatialTrackerV2Options(chunk_frames=3, chunk_overlap=3)
