"""``cotracker3`` adapter against the CoTracker stand-in (tests/standins/cotracker), which follows the
documented cotracker.predictor API and normalises 0-255 input like CoTracker3."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from d2f_conformance import check_component, check_plugin, format_results  # noqa: E402
from d2f_core import DataError, Video  # noqa: E402
from d2f_core.registry import PluginUnavailableError, get_registry  # noqa: E402
from d2f_plugins.tracker import cotracker3 as ct  # noqa: E402
from standins.standin_env import STANDINS, standin_modules  # noqa: E402

STANDIN = STANDINS / "cotracker"


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Stand-in library importable, an empty torch hub cache, a stand-in checkpoint."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("COTRACKER_DIR", raising=False)
    ckpt = tmp_path / "scaled_offline.pth"
    torch.save({"model_resolution_hw": torch.tensor([96, 128])}, ckpt)
    with standin_modules(STANDIN):
        yield ckpt


def build(ckpt, **kw):
    return ct._factory(ct.CoTrackerOptions(weights=str(ckpt), **kw))


def shifting_video(T=6, H=40, W=56, vx=1.5, vy=-0.5):
    """Smooth random texture translating by exactly (vx, vy) px per frame (Fourier shift of a
    periodic, band-limited image): the truth for any query."""
    rng = np.random.default_rng(1)
    fy, fx = np.meshgrid(np.fft.fftfreq(H), np.fft.fftfreq(W), indexing="ij")
    spec = np.fft.fft2(rng.normal(size=(H, W))) * np.exp(-(fx ** 2 + fy ** 2) / (2 * 0.08 ** 2))
    frames = []
    for t in range(T):
        img = np.real(np.fft.ifft2(spec * np.exp(-2j * np.pi * (fx * vx * t + fy * vy * t))))
        img = 128 + 90 * img / np.abs(img).max()
        frames.append(np.stack([img, 0.8 * img + 20, 255 - img], -1))
    return Video(frames=np.clip(np.round(np.stack(frames)), 0, 255).astype(np.uint8), fps=8.0), np.array([vx, vy])


# --------------------------------------------------------------------------- availability and errors


def test_unavailable_without_library(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("COTRACKER_DIR", raising=False)
    if ct._library_present():
        pytest.skip("a real CoTracker is installed here")
    reason = get_registry().unavailable_reason(get_registry().get("tracker", "cotracker3").manifest)
    assert "pip install git+https://github.com/facebookresearch/co-tracker" in reason
    assert "dream2flow[cotracker]" in reason
    res = check_plugin("cotracker3", "tracker")
    assert [r.status for r in res] == ["skipped"]


def test_missing_weights_is_one_clear_line(env, tmp_path):
    with pytest.raises(PluginUnavailableError) as e:
        get_registry().create("tracker", "cotracker3", {})
    msg = str(e.value)
    assert "\n" not in msg and "tracker.options.weights" in msg and "scaled_offline.pth" in msg
    with pytest.raises(DataError, match="tracker.options.weights: CoTracker3 checkpoint not found"):
        get_registry().create("tracker", "cotracker3", {"weights": str(tmp_path / "missing" / "scaled_offline.pth")})


def test_hub_cache_checkout_and_weights_are_found(tmp_path, monkeypatch):
    """Without the package installed and without options: the torch hub cache's code and weights."""
    hub = tmp_path / "torch" / "hub"
    (hub / "facebookresearch_co-tracker_main").mkdir(parents=True)
    (hub / "facebookresearch_co-tracker_main" / "cotracker").symlink_to(STANDIN / "cotracker")
    (hub / "checkpoints").mkdir()
    torch.save({"model_resolution_hw": torch.tensor([96, 128])}, hub / "checkpoints" / "scaled_offline.pth")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("COTRACKER_DIR", raising=False)
    with standin_modules(hub / "facebookresearch_co-tracker_main"):
        import sys
        sys.path.remove(str((hub / "facebookresearch_co-tracker_main").resolve()))  # found via the hub cache
        assert ct._available() is None
        tracker = get_registry().create("tracker", "cotracker3", {})
        video, v = shifting_video()
        tr = tracker.track(video, np.array([[0, 20.0, 20.0]], np.float32))
        assert np.allclose(tr.xy[-1, 0], [20 + 5 * v[0], 20 + 5 * v[1]], atol=0.5)


# --------------------------------------------------------------------------- conformance


@pytest.mark.parametrize("mode", ["offline", "online"])
def test_conformance_passes_on_the_standin(env, mode):
    res = check_plugin("cotracker3", "tracker", options={"weights": str(env), "mode": mode})
    assert all(r.status == "passed" for r in res), format_results(res)
    assert {r.check for r in res} >= {"tracker_known_motion", "tracker_channel_order", "model_input_convention"}


class Div255(ct.CoTracker3Tracker):
    """The official release's mistake: feeds CoTracker 0-1 floats."""

    def model_input(self, video):
        return super().model_input(video) / 255.0


class BGRInput(ct.CoTracker3Tracker):
    def model_input(self, video):
        return super().model_input(video).flip(2)


class HiddenDiv255(ct.CoTracker3Tracker):
    """Divides on the way to the model while model_input still looks right: only the model's
    accuracy can catch it."""

    def _offline(self, x, q):
        return super()._offline(x / 255.0, q)


def _failed(component):
    res = check_component(component, "tracker", only=["tracker_known_motion", "tracker_channel_order",
                                                       "model_input_convention"])
    return {r.check: r.message for r in res if r.status == "failed"}


def test_feeding_0_1_floats_is_caught(env):
    good = build(env)
    failed = _failed(Div255(good.predictor, good.options))
    assert "model_input_convention" in failed
    assert "values are in 0-1 but the model expects 0-255" in failed["model_input_convention"]
    assert "do not divide by 255" in failed["model_input_convention"]
    assert "tracker_known_motion" in failed  # the stand-in, like CoTracker3, sees a black video
    hidden = _failed(HiddenDiv255(good.predictor, good.options))
    assert "tracker_known_motion" in hidden and "model_input_convention" not in hidden


def test_feeding_bgr_is_caught(env):
    good = build(env)
    failed = _failed(BGRInput(good.predictor, good.options))
    assert "model input is BGR but the model expects RGB" in failed["model_input_convention"]
    assert "tracker_channel_order" in failed


# --------------------------------------------------------------------------- conversions


class SpyPredictor(torch.nn.Module):
    """Records what the adapter feeds and returns known tracks and float (B, T, N, 1) visibility."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, video, queries=None, backward_tracking=False):
        self.calls.append((video.clone(), queries.clone(), backward_tracking))
        B, T = video.shape[:2]
        N = queries.shape[1]
        t = torch.arange(T, dtype=torch.float32)[:, None]
        n = torch.arange(N, dtype=torch.float32)[None, :]
        tracks = torch.stack([10 * n + t, 20 + n + 2 * t], -1)[None]          # (1, T, N, 2)
        vis = torch.where((t + n) % 3 == 0, 0.3, 0.95)[None, ..., None]        # (1, T, N, 1) floats
        return tracks, vis


def test_model_receives_0_255_rgb_btchw_and_txy_queries():
    spy = SpyPredictor()
    tracker = ct.CoTracker3Tracker(spy, ct.CoTrackerOptions(backward_tracking=True))
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (5, 12, 16, 3), dtype=np.uint8)
    q = np.array([[0, 3.0, 4.0], [2, 10.5, 7.25], [4, 1.0, 11.0]], np.float32)
    tr = tracker.track(Video(frames=frames), q)
    video, queries, backward = spy.calls[0]
    assert video.dtype == torch.float32 and tuple(video.shape) == (1, 5, 3, 12, 16)
    assert np.array_equal(video[0].permute(0, 2, 3, 1).numpy(), frames.astype(np.float32))  # RGB, 0-255
    assert np.array_equal(queries[0].numpy(), q) and backward is True                        # (t, x, y)
    T, N = 5, 3
    t, n = np.arange(T)[:, None], np.arange(N)[None, :]
    want = np.stack([10 * n + t, 20 + n + 2 * t], -1).astype(np.float32)
    vis = ((t + n) % 3 != 0)
    qf = q[:, 0].astype(int)
    want[qf, np.arange(N)] = q[:, 1:]          # at its query frame a point is its query, visible
    vis[qf, np.arange(N)] = True
    assert np.array_equal(tr.xy, want) and np.array_equal(tr.visible, vis)
    assert tr.query_frame.tolist() == [0, 2, 4]


def test_tracks_known_translation_with_later_query_frames(env):
    tracker = build(env, backward_tracking=True)
    video, v = shifting_video(T=7)
    q = np.array([[3, 20.0, 18.0], [0, 25.0, 22.0], [6, 30.0, 15.0]], np.float32)
    tr = tracker.track(video, q)
    truth = q[None, :, 1:] + (np.arange(7)[:, None, None] - q[None, :, :1]) * v
    assert np.abs(tr.xy - truth).max() < 0.5
    assert tr.visible.all()


def test_online_mode_tracks_a_longer_video_forward(env):
    tracker = build(env, mode="online")
    assert "online" in tracker.capabilities
    video, v = shifting_video(T=20, vx=1.0, vy=0.5)
    q = np.array([[0, 15.0, 15.0], [9, 20.0, 20.0]], np.float32)
    tr = tracker.track(video, q)
    assert tr.xy.shape == (20, 2, 2)
    t = np.arange(20)[:, None]
    truth = q[None, :, 1:] + (t - q[None, :, 0])[..., None] * v
    after = t >= q[None, :, 0]
    assert np.abs(tr.xy - truth)[after].max() < 0.5
    assert tr.visible[after].all() and not tr.visible[~after].any()  # online: nothing before the query


def test_empty_queries(env):
    tr = build(env).track(shifting_video()[0], np.zeros((0, 3), np.float32))
    assert tr.xy.shape == (6, 0, 2)


# --------------------------------------------------------------------------- visibility semantics (upstream)


class ProbabilityPredictor(torch.nn.Module):
    """Returns known visibility probabilities (not what the upstream predictors return: they give
    booleans) to check the adapter applies the upstream's rule to them."""

    def __init__(self, probs):
        super().__init__()
        self.probs = probs

    def forward(self, video, queries=None, backward_tracking=False):
        B, T = video.shape[:2]
        N = queries.shape[1]
        return torch.zeros(1, T, N, 2), self.probs.clone()


def test_float_visibility_uses_the_upstream_offline_rule():
    probs = torch.tensor([[[0.95, 0.91], [0.89, 0.5], [0.9, 0.99]]])       # (1, T=3, N=2)
    tracker = ct.CoTracker3Tracker(ProbabilityPredictor(probs), ct.CoTrackerOptions())
    tr = tracker.track(Video(frames=np.zeros((3, 8, 8, 3), np.uint8)), np.array([[0, 1.0, 1.0], [0, 2.0, 2.0]]))
    # upstream CoTrackerPredictor: visible = probability > 0.9 (0.9 itself is not); frame 0 = query
    assert tr.visible.tolist() == [[True, True], [False, False], [False, True]]


def test_visibility_threshold_option_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="return visibility already thresholded.*> 0.9.*> 0.6"):
        ct.CoTrackerOptions(visibility_threshold=0.5)
    with pytest.raises(Exception, match="delete tracker.options.visibility_threshold"):
        reg = get_registry()
        reg.validate_options(reg.get("tracker", "cotracker3"), {"visibility_threshold": 0.3})


def test_standin_visibility_follows_upstream_thresholds(env):
    """The stand-in predictors threshold like upstream: offline p > 0.9; online p_vis * p_conf > 0.6.
    The adapter passes those booleans through unchanged (compared with the stand-in model's own
    probabilities, computed here)."""
    from cotracker.predictor import CoTrackerPredictor, _scale, _to_model

    video, _ = shifting_video(T=6)
    frames = video.frames.copy()
    frames[3:, 10:30, 12:40] = 128  # a flat occluder: template matching fails there
    video = Video(frames=frames, fps=8.0)
    q = np.array([[0, 20.0, 20.0], [0, 45.0, 30.0], [0, 8.0, 8.0]], np.float32)
    tr = build(env).track(video, q)
    pred = CoTrackerPredictor(checkpoint=str(env))
    x = torch.from_numpy(frames.astype(np.float32)).permute(0, 3, 1, 2)[None]
    hw = pred.interp_shape
    qq = torch.from_numpy(q)[None].clone()
    qq[:, :, 1:] *= _scale(x.shape[3], x.shape[4], hw)
    _, p, *_ = pred.model(_to_model(x, hw), qq, iters=6)
    want = (p[0] > 0.9).numpy()
    want[0] = True
    assert np.array_equal(tr.visible, want)
    assert 0 < tr.visible.sum() < tr.visible.size  # some frames each way: the rule was exercised


def test_online_predictor_output_keeps_only_the_queries(env, tmp_path):
    """Upstream drops the support grid from an online step only when that call passes
    add_support_grid=True; the adapter does, so it gets exactly its N tracks."""
    ckpt = tmp_path / "scaled_online.pth"
    torch.save({"model_resolution_hw": torch.tensor([96, 128])}, ckpt)
    tracker = build(ckpt, mode="online")
    video, v = shifting_video(T=20, vx=1.0, vy=0.5)
    calls = []
    orig = tracker.predictor.forward

    def spy(*a, **k):
        calls.append(dict(k))
        return orig(*a, **k)

    tracker.predictor.forward = spy
    tr = tracker.track(video, np.array([[0, 15.0, 15.0]], np.float32))
    assert tr.xy.shape == (20, 1, 2)
    assert all(c.get("add_support_grid") is True for c in calls)
    # called without it (as the adapter used to), the stand-in, like upstream, returns the support points too
    tracker.predictor(video_chunk=tracker.model_input(video), is_first_step=True,
                      queries=torch.tensor([[[0, 15.0, 15.0]]]), add_support_grid=True)
    out, _ = orig(video_chunk=tracker.model_input(video)[:, :16])
    assert out.shape[2] == 1 + 9


# --------------------------------------------------------------------------- version and chunking


def test_available_reports_a_pre_v3_checkout(tmp_path, monkeypatch):
    old = tmp_path / "co-tracker-v2" / "cotracker"
    old.mkdir(parents=True)
    (old / "__init__.py").write_text("")
    (old / "predictor.py").write_text(
        "import torch\nclass CoTrackerPredictor(torch.nn.Module):\n"
        "    def __init__(self, checkpoint='./checkpoints/cotracker2.pth'):\n        super().__init__()\n")
    monkeypatch.setenv("COTRACKER_DIR", str(tmp_path / "co-tracker-v2"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    if importlib_find("cotracker"):
        pytest.skip("a real CoTracker is installed here")
    why = ct._available()
    assert why is not None and "predates CoTracker3" in why and "offline, v2, window_len" in why
    assert "co-tracker >= 3.0" in why
    assert ct.predictor_keywords((STANDIN / "cotracker" / "predictor.py").read_text()) >= {"offline", "v2",
                                                                                          "window_len"}


def importlib_find(name):
    import importlib.util
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def test_current_checkout_is_available(tmp_path, monkeypatch):
    monkeypatch.setenv("COTRACKER_DIR", str(STANDIN))
    assert ct._available() is None


def test_chunked_offline_tracking_matches_the_known_motion(env):
    """A 30-frame video in chunks of 12 frames overlapping by 4: the same known translation as the
    whole-video pass, within 0.5 px, with the predictor never seeing more than 12 frames."""
    video, v = shifting_video(T=30, H=48, W=64, vx=0.8, vy=0.3)
    q = np.array([[0, 20.0, 20.0], [0, 28.0, 24.0], [14, 30.0, 25.0]], np.float32)
    tracker = build(env, chunk_frames=12, chunk_overlap=4)
    seen = []
    orig = tracker._offline
    tracker._offline = lambda x, qq: (seen.append(x.shape[1]), orig(x, qq))[1]
    tr = tracker.track(video, q)
    assert max(seen) <= 12 and len(seen) == 4  # chunks 0-11, 8-19, 16-27, 24-29
    t = np.arange(30)[:, None, None]
    truth = q[None, :, 1:] + (t - q[None, :, :1]) * v
    after = np.arange(30)[:, None] >= q[None, :, 0]
    err = np.linalg.norm(tr.xy - truth, axis=-1)
    assert err[after].max() < 0.5, err[after].max()
    assert tr.visible[after].all()
    with pytest.raises(ValueError, match="chunk_overlap"):
        ct.CoTrackerOptions(chunk_frames=4, chunk_overlap=4)


def test_device_auto_is_the_cpu_here_and_logged(env, caplog):
    import logging
    import d2f_core.devices as dev

    dev._LOGGED.clear()
    with caplog.at_level(logging.INFO, logger="d2f.devices"):
        tracker = build(env)
    if torch.cuda.is_available():
        pytest.skip("CUDA here")
    assert (tracker.device.device, tracker.device.dtype) == ("cpu", "float32")
    assert any("tracker cotracker3 runs on cpu float32" in r.getMessage() for r in caplog.records)
