"""``veo3`` adapter: the real google-genai client against a local server speaking Veo's REST
protocol (``VeoStandIn``). Nothing here talks to Google."""

from __future__ import annotations

import base64
import io
import logging
import time

import numpy as np
import pytest

pytest.importorskip("google.genai")
pytest.importorskip("PIL")
pytest.importorskip("imageio_ffmpeg")

from d2f_core import Video  # noqa: E402
from d2f_core.registry import PluginUnavailableError  # noqa: E402
from d2f_plugins.video._adapter_util import VideoServiceError  # noqa: E402
from d2f_plugins.video.veo import DEFAULT_MODEL, VeoOptions, VeoStandIn, VeoVideoModel  # noqa: E402

KEY = "AIza-d2f-test-KEY-0123456789"
PROMPT = "open the drawer by one hand. The camera holds a still pose, not zooming in or out."


@pytest.fixture
def key(monkeypatch):
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.setenv("GEMINI_API_KEY", KEY)


def _image(h=60, w=80, seed=0):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    ph = np.random.default_rng(seed).uniform(0, 6.28, 3)
    img = np.stack([127 + 110 * np.sin(xx / 9 + ph[0]), 127 + 110 * np.sin(yy / 7 + ph[1]),
                    127 + 110 * np.sin((xx + yy) / 11 + ph[2])], -1)
    return np.clip(img, 0, 255).astype(np.uint8)


def _model(url, **kw):
    opts = dict(base_url=url, poll_interval_s=0.01, backoff_s=0.01, timeout_s=30.0)
    opts.update(kw)
    return VeoVideoModel(VeoOptions(**opts))


def _mad(a, b):
    return float(np.mean(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def _png(obj):
    from PIL import Image
    assert obj["mimeType"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(obj["bytesBase64Encoded"]))).convert("RGB"))


def test_request_follows_the_protocol_and_frames_come_back_at_camera_size(key):
    image, last = _image(seed=0), _image(seed=4)
    with VeoStandIn(KEY, polls_before_done=3, fps=8, shift_px=0) as srv:
        m = _model(srv.url, negative_prompt="cartoon", duration_s=6)
        video = m.generate(image, PROMPT, last_image=last, num_frames=9, seed=7)
    predicts = [r for r in srv.requests if r.path.endswith(":predictLongRunning")]
    fetches = [r for r in srv.requests if r.path.endswith(":fetchPredictOperation")]
    assert len(predicts) == 1
    assert predicts[0].path == f"/v1beta1/publishers/google/models/{DEFAULT_MODEL}:predictLongRunning"
    for r in predicts + fetches:
        assert r.headers["x-goog-api-key"] == KEY and r.method == "POST"
    inst, params = predicts[0].body["instances"][0], predicts[0].body["parameters"]
    assert inst["prompt"] == PROMPT
    assert params == {"sampleCount": 1, "durationSeconds": 6, "aspectRatio": "16:9", "resolution": "720p",
                      "generateAudio": False, "personGeneration": "allow_adult", "negativePrompt": "cartoon",
                      "seed": 7}
    # the 80x60 (4:3) image is letterboxed to 16:9 (107x60): black bars left/right, image centred
    sent, sent_last = _png(inst["image"]), _png(inst["lastFrame"])
    assert sent.shape == (60, 107, 3) and sent_last.shape == (60, 107, 3)
    x0 = (107 - 80) // 2
    assert np.array_equal(sent[:, x0:x0 + 80], image) and np.array_equal(sent_last[:, x0:x0 + 80], last)
    assert sent[:, :x0].max() == 0 and sent[:, x0 + 80:].max() == 0
    # polled the operation the predict call returned until done
    op = m.last_operation["name"]
    assert len(fetches) == 4 and all(r.body == {"operationName": op} for r in fetches)
    assert m.last_operation["polls"] == 4
    # frames: the requested count at the camera's size, the letterbox cropped away, RGB
    assert isinstance(video, Video) and video.frames.shape == (9, 60, 80, 3) and video.frames.dtype == np.uint8
    assert m.last_operation["received_frames"] == 48 and m.last_operation["received_size"] == (72, 128)
    assert video.fps == pytest.approx(8 / (47 / 8))
    d_rgb, d_bgr = _mad(video.frames[0], image), _mad(video.frames[0], image[..., ::-1])
    assert d_rgb < 12.0 and d_bgr > 3 * d_rgb
    assert _mad(video.frames[-1], last) < 12.0 and _mad(video.frames[-1], image) > 30.0
    assert video.seed == 7 and "letterbox cropped" in video.model and "resampled to 9" in video.model


def test_portrait_images_use_9_16(key):
    image = _image(h=90, w=50)
    with VeoStandIn(KEY, polls_before_done=0) as srv:
        video = _model(srv.url).generate(image, PROMPT, num_frames=5)
    req = [r for r in srv.requests if r.path.endswith(":predictLongRunning")][0].body
    assert req["parameters"]["aspectRatio"] == "9:16"
    assert _png(req["instances"][0]["image"]).shape == (90, 51, 3)  # bars left and right again
    assert video.frames.shape == (5, 90, 50, 3) and _mad(video.frames[0], image) < 12.0


def test_quota_429_is_retried_then_succeeds(key):
    with VeoStandIn(KEY, quota_first=2, polls_before_done=1) as srv:
        video = _model(srv.url).generate(_image(), PROMPT, num_frames=5)
    assert len([r for r in srv.requests if r.path.endswith(":predictLongRunning")]) == 3
    assert video.num_frames == 5


def test_quota_that_does_not_recover_is_reported_as_quota(key):
    with VeoStandIn(KEY, quota_first=100) as srv:
        with pytest.raises(VideoServiceError) as ei:
            _model(srv.url, retries=2).generate(_image(), PROMPT, num_frames=5)
    msg = str(ei.value)
    assert "quota or rate limit exceeded" in msg and "429 RESOURCE_EXHAUSTED" in msg and "failed 3 time(s)" in msg
    assert len([r for r in srv.requests if r.path.endswith(":predictLongRunning")]) == 3


def test_server_errors_are_retried(key):
    with VeoStandIn(KEY, server_errors_first=1, polls_before_done=0) as srv:
        video = _model(srv.url).generate(_image(), PROMPT, num_frames=5)
    assert len([r for r in srv.requests if r.path.endswith(":predictLongRunning")]) == 2 and video.num_frames == 5


def test_safety_filter_is_a_clear_error(key):
    reason = "Veo could not generate videos because the input image violates the usage guidelines."
    with VeoStandIn(KEY, rai_filtered=[reason]) as srv:
        with pytest.raises(VideoServiceError, match=r"safety filter removed the video \(1 filtered; reasons: Veo"):
            _model(srv.url).generate(_image(), PROMPT, num_frames=5)


@pytest.mark.parametrize("error, expect", [({"code": 8, "message": "Resource has been exhausted"}, "quota exceeded"),
                                           ({"code": 13, "message": "Internal error"}, "generation failed")])
def test_operation_errors(key, error, expect):
    with VeoStandIn(KEY, operation_error=error) as srv:
        with pytest.raises(VideoServiceError, match=expect):
            _model(srv.url).generate(_image(), PROMPT, num_frames=5)


def test_wrong_key_is_refused_without_retries_and_without_echoing_it(key, monkeypatch):
    with VeoStandIn("the-right-key-is-another-one") as srv:
        with pytest.raises(VideoServiceError) as ei:
            _model(srv.url).generate(_image(), PROMPT, num_frames=5)
    msg = str(ei.value)
    assert "refused the API key" in msg and "GEMINI_API_KEY" in msg and KEY not in msg
    assert len([r for r in srv.requests if r.path.endswith(":predictLongRunning")]) == 1


def test_video_by_uri_is_downloaded_and_the_key_only_goes_to_the_api_host(key):
    with VeoStandIn(KEY, serve_uri=True, polls_before_done=0) as srv:
        video = _model(srv.url).generate(_image(), PROMPT, num_frames=5)
        media = [r for r in srv.requests if r.path.startswith("/media/")]
        assert len(media) == 1 and media[0].headers.get("x-goog-api-key") == KEY  # same host as the API
        # same server reached as "localhost": the video URL names 127.0.0.1, another host -> no key
        port = srv.url.rsplit(":", 1)[1]
        _model(f"http://localhost:{port}").generate(_image(), PROMPT, num_frames=5)
        media = [r for r in srv.requests if r.path.startswith("/media/")]
        assert len(media) == 2 and "x-goog-api-key" not in media[1].headers
    assert video.frames.shape == (5, 60, 80, 3)


def test_slow_operation_hits_the_overall_timeout(key):
    with VeoStandIn(KEY, polls_before_done=10_000) as srv:
        t0 = time.monotonic()
        with pytest.raises(VideoServiceError, match=r"not done after 0.3 s \(timeout_s\)"):
            _model(srv.url, poll_interval_s=0.05, timeout_s=0.3).generate(_image(), PROMPT, num_frames=5)
        assert time.monotonic() - t0 < 3.0  # gave up at the limit, not after many more polls


def test_missing_key_is_one_line_naming_the_variable(monkeypatch):
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    with pytest.raises(PluginUnavailableError) as ei:
        VeoVideoModel(VeoOptions())
    assert "GEMINI_API_KEY" in str(ei.value) and "\n" not in str(ei.value)
    from d2f_conformance import check_plugin
    (r,) = check_plugin("veo3", kind="video")
    assert r.status == "skipped" and "GEMINI_API_KEY" in r.message


def test_google_api_key_is_accepted_too(monkeypatch):
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.setenv("GOOGLE_API_KEY", KEY)
    with VeoStandIn(KEY, polls_before_done=0) as srv:
        assert _model(srv.url).generate(_image(), PROMPT, num_frames=5).num_frames == 5


def test_inputs_are_validated(key):
    m = _model("http://127.0.0.1:9")
    with pytest.raises(ValueError, match="image"):
        m.generate(_image().astype(np.float32) / 255, PROMPT, num_frames=5)
    with pytest.raises(ValueError, match="last_image: must be the size"):
        m.generate(_image(), PROMPT, last_image=_image(h=30, w=40), num_frames=5)
    with pytest.raises(ValueError, match="seed"):
        m.generate(_image(), PROMPT, num_frames=5, seed=-1)


def test_key_never_reaches_logs_output_or_errors(key, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    texts = []
    with VeoStandIn(KEY, polls_before_done=1) as srv:
        texts.append(_model(srv.url).generate(_image(), PROMPT, num_frames=5).model)
    for kw in (dict(rai_filtered=[f"leak {KEY}"]), dict(operation_error={"code": 3, "message": f"bad {KEY}"}),
               dict(quota_first=100)):
        with VeoStandIn(KEY, **kw) as srv:
            with pytest.raises(VideoServiceError) as ei:
                _model(srv.url, retries=1).generate(_image(), PROMPT, num_frames=5)
            texts.append(str(ei.value))
    out = capsys.readouterr()
    texts += [out.out, out.err, caplog.text]
    assert all(KEY not in t for t in texts)
    assert "***" in texts[1] and "***" in texts[2]


def test_conformance_checks_pass_against_the_stand_in(key):
    from d2f_conformance import all_passed, check_plugin, format_results
    results = check_plugin("veo3", kind="video")
    assert all_passed(results), format_results(results)
    passed = {r.check for r in results if r.status == "passed"}
    assert {"video_output_types", "video_num_frames", "video_end_frame_conditioning", "video_channel_order",
            "model_input_convention"} <= passed
    import threading
    deadline = time.monotonic() + 2.0
    while any(t.name == "d2f-stand-in" for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(t.name == "d2f-stand-in" for t in threading.enumerate())  # did not outlive the check
