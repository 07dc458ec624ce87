"""``veo3`` adapter: the real google-genai client against a local server speaking Veo's REST
protocols (``d2f_conformance.standins.veo.VeoStandIn``): the Gemini Developer API (the default) and Vertex AI
(``vertexai=True``). Nothing here talks to Google."""

from __future__ import annotations

import base64
import io
import logging
import re
import time

import numpy as np
import pytest

genai = pytest.importorskip("google.genai")
pytest.importorskip("PIL")
pytest.importorskip("imageio_ffmpeg")

from d2f_core import Video  # noqa: E402
from d2f_core.registry import PluginUnavailableError  # noqa: E402
from d2f_plugins.video import veo as veo_mod  # noqa: E402
from d2f_plugins.video._adapter_util import VideoServiceError  # noqa: E402
from d2f_plugins.video.veo import DEFAULT_MODEL, DEFAULT_VERTEX_MODEL, VeoOptions, VeoVideoModel  # noqa: E402
from d2f_conformance.standins.veo import VeoStandIn  # noqa: E402
from servers.conformance import assert_conformance_against_stand_in  # noqa: E402
from servers.images import mad, smooth_image  # noqa: E402

KEY = "AIza-d2f-test-KEY-0123456789"
PROMPT = "open the drawer by one hand. The camera holds a still pose, not zooming in or out."
GENAI_MAJOR = int(re.match(r"\d+", getattr(genai, "__version__", "0")).group(0))
developer_mode = pytest.mark.skipif(GENAI_MAJOR >= 3, reason="google-genai >= 3 has no Veo in the Gemini "
                                                             "Developer API (the veo extra pins <3)")
PREDICT_DEV = f"/v1beta/models/{DEFAULT_MODEL}:predictLongRunning"


@pytest.fixture
def key(monkeypatch):
    for var in ("GOOGLE_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("GEMINI_API_KEY", KEY)


def _model(url, **kw):
    opts = dict(base_url=url, poll_interval_s=0.01, backoff_s=0.01, timeout_s=30.0)
    opts.update(kw)
    return VeoVideoModel(VeoOptions(**opts))


def _png(obj):
    from PIL import Image
    assert obj["mimeType"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(obj["bytesBase64Encoded"]))).convert("RGB"))


def _count(srv, pred):
    return len([r for r in srv.requests if pred(r.path)])


def _is_predict(path):
    return path.endswith(":predictLongRunning")


# ----------------------------------------------------------------------------- Gemini Developer API (default)


@developer_mode
def test_developer_api_requests_follow_the_protocol_and_frames_come_back_at_camera_size(key):
    image, last = smooth_image(seed=0), smooth_image(seed=4)
    with VeoStandIn(KEY, polls_before_done=3, fps=8, shift_px=0) as srv:
        m = _model(srv.url, negative_prompt="cartoon", duration_s=6)
        video = m.generate(image, PROMPT, last_image=last, num_frames=9, seed=7)
    reqs = srv.requests
    # 1 predict, 4 polls (3 not done + done), the Files API download, the redirect it answers with
    assert [(r.method, r.path.split("?")[0].rsplit("/", 1)[0]) for r in reqs] == (
        [("POST", "/v1beta/models")] + [("GET", f"/v1beta/models/{DEFAULT_MODEL}/operations")] * 4
        + [("GET", "/v1beta/files"), ("GET", "/media")])
    predict, polls, download = reqs[0], reqs[1:5], reqs[5]
    assert predict.path == PREDICT_DEV
    for r in reqs[:6]:  # the key goes in the header (never in the URL), on every API request
        assert r.headers["x-goog-api-key"] == KEY and KEY not in r.path
        assert r.headers["user-agent"].startswith("google-genai-sdk/")
    assert predict.headers["content-type"] == "application/json"
    inst, params = predict.body["instances"][0], predict.body["parameters"]
    assert set(predict.body) == {"instances", "parameters"} and set(inst) == {"prompt", "image", "lastFrame"}
    assert inst["prompt"] == PROMPT
    # no seed, no generateAudio: google-genai refuses both in this mode
    assert params == {"sampleCount": 1, "durationSeconds": 6, "aspectRatio": "16:9", "resolution": "720p",
                      "personGeneration": "allow_adult", "negativePrompt": "cartoon"}
    # the 80x60 (4:3) image is letterboxed to 16:9 (107x60): black bars left/right, image centred
    sent, sent_last = _png(inst["image"]), _png(inst["lastFrame"])
    assert sent.shape == (60, 107, 3) and sent_last.shape == (60, 107, 3)
    x0 = (107 - 80) // 2
    assert np.array_equal(sent[:, x0:x0 + 80], image) and np.array_equal(sent_last[:, x0:x0 + 80], last)
    assert sent[:, :x0].max() == 0 and sent[:, x0 + 80:].max() == 0
    # polled the operation the predict call named (GET, no body) until done
    op = m.last_operation["name"]
    assert re.fullmatch(rf"models/{DEFAULT_MODEL}/operations/[0-9a-f]{{12}}", op)
    assert all(r.path == f"/v1beta/{op}" and not r.raw for r in polls) and m.last_operation["polls"] == 4
    # downloaded the Files API file the done operation named, with alt=media
    assert re.fullmatch(r"/v1beta/files/[0-9a-f]{12}:download\?alt=media", download.path)
    # frames: the requested count at the camera's size, the letterbox cropped away, RGB
    assert isinstance(video, Video) and video.frames.shape == (9, 60, 80, 3) and video.frames.dtype == np.uint8
    assert m.last_operation["received_frames"] == 48 and m.last_operation["received_size"] == (72, 128)
    assert video.fps == pytest.approx(8 / (47 / 8))
    d_rgb, d_bgr = mad(video.frames[0], image), mad(video.frames[0], image[..., ::-1])
    assert d_rgb < 12.0 and d_bgr > 3 * d_rgb
    assert mad(video.frames[-1], last) < 12.0 and mad(video.frames[-1], image) > 30.0
    assert video.seed is None and "seed 7 not sent" in video.model and "via Gemini API" in video.model
    assert "letterbox cropped" in video.model and "resampled to 9" in video.model


@developer_mode
def test_frames_follow_the_generated_motion(key):
    """The stand-in drifts the (letterboxed 128x72) picture right by 16 px over the video; after
    cropping and resizing to the camera's 160x120 that is 16 * 120/72 = 26.7 camera pixels."""
    image = smooth_image(h=120, w=160, seed=2)
    with VeoStandIn(KEY, polls_before_done=0, shift_px=16, fps=8) as srv:
        video = _model(srv.url, duration_s=4).generate(image, PROMPT, num_frames=5)
    f0, f4 = video.frames[0].astype(np.float64), video.frames[-1].astype(np.float64)
    errs = {s: np.mean(np.abs(f4[:, 40 + s:120 + s] - f0[:, 40:120])) for s in range(0, 40)}
    assert min(errs, key=errs.get) in (26, 27, 28)


@developer_mode
def test_portrait_images_use_9_16(key):
    image = smooth_image(h=90, w=50)
    with VeoStandIn(KEY, polls_before_done=0) as srv:
        video = _model(srv.url).generate(image, PROMPT, num_frames=5)
    req = [r for r in srv.requests if _is_predict(r.path)][0].body
    assert req["parameters"]["aspectRatio"] == "9:16"
    assert _png(req["instances"][0]["image"]).shape == (90, 51, 3)  # bars left and right again
    assert video.frames.shape == (5, 90, 50, 3) and mad(video.frames[0], image) < 12.0


@developer_mode
def test_real_service_file_uri_is_downloaded_through_base_url_and_plain_links_without_the_key(key):
    # the real service names generativelanguage.googleapis.com in the uri: google-genai's
    # files.download(file=video) still fetches it from base_url (the proxy / stand-in), with the key
    with VeoStandIn(KEY, polls_before_done=0, uri_base="https://generativelanguage.googleapis.com",
                    redirect_download=False) as srv:
        assert _model(srv.url).generate(smooth_image(), PROMPT, num_frames=5).num_frames == 5
    dl = [r for r in srv.requests if "/files/" in r.path]
    assert len(dl) == 1 and dl[0].headers["x-goog-api-key"] == KEY and dl[0].path.endswith(":download?alt=media")
    # a video link that is not a Files API URL is fetched without the key
    with VeoStandIn(KEY, polls_before_done=0, serve_uri=True) as srv:
        assert _model(srv.url).generate(smooth_image(), PROMPT, num_frames=5).num_frames == 5
    media = [r for r in srv.requests if r.path.startswith("/media/")]
    assert len(media) == 1 and "x-goog-api-key" not in media[0].headers
    assert _count(srv, lambda p: "/files/" in p) == 0


@developer_mode
def test_quota_429_is_retried_then_succeeds(key):
    with VeoStandIn(KEY, quota_first=2, polls_before_done=1) as srv:
        video = _model(srv.url).generate(smooth_image(), PROMPT, num_frames=5)
    assert _count(srv, _is_predict) == 3 and video.num_frames == 5


@developer_mode
def test_quota_that_does_not_recover_is_reported_as_quota(key):
    with VeoStandIn(KEY, quota_first=100) as srv:
        with pytest.raises(VideoServiceError) as ei:
            _model(srv.url, retries=2).generate(smooth_image(), PROMPT, num_frames=5)
    msg = str(ei.value)
    assert "quota or rate limit exceeded" in msg and "429 RESOURCE_EXHAUSTED" in msg and "failed 3 time(s)" in msg
    assert _count(srv, _is_predict) == 3 and "\n" not in msg


@developer_mode
def test_backoff_doubles_between_retries(key):
    with VeoStandIn(KEY, quota_first=3, polls_before_done=0) as srv:
        t0 = time.monotonic()
        _model(srv.url, backoff_s=0.1).generate(smooth_image(), PROMPT, num_frames=5)
        elapsed = time.monotonic() - t0
    assert _count(srv, _is_predict) == 4
    assert 0.7 <= elapsed < 3.0  # waited 0.1 + 0.2 + 0.4 s between the four attempts


@developer_mode
def test_server_errors_are_retried(key):
    with VeoStandIn(KEY, server_errors_first=1, polls_before_done=0) as srv:
        video = _model(srv.url).generate(smooth_image(), PROMPT, num_frames=5)
    assert _count(srv, _is_predict) == 2 and video.num_frames == 5


@developer_mode
def test_wrong_key_is_refused_without_retries_and_without_echoing_it(key):
    with VeoStandIn("the-right-key-is-another-one") as srv:
        with pytest.raises(VideoServiceError) as ei:
            _model(srv.url).generate(smooth_image(), PROMPT, num_frames=5)
    msg = str(ei.value)
    assert "refused the API key" in msg and "GEMINI_API_KEY" in msg and "aistudio" in msg and KEY not in msg
    assert _count(srv, _is_predict) == 1


@developer_mode
def test_unknown_model_names_the_option(key):
    with VeoStandIn(KEY, known_models=[DEFAULT_MODEL]) as srv:
        with pytest.raises(VideoServiceError, match=r"HTTP 404 NOT_FOUND.*check veo3.options.model \('veo-9'"):
            _model(srv.url, model="veo-9").generate(smooth_image(), PROMPT, num_frames=5)
    assert srv.requests[0].path == "/v1beta/models/veo-9:predictLongRunning" and len(srv.requests) == 1


@developer_mode
def test_slow_operation_hits_the_overall_timeout(key):
    with VeoStandIn(KEY, polls_before_done=10_000) as srv:
        t0 = time.monotonic()
        with pytest.raises(VideoServiceError, match=r"not done after 0.3 s \(timeout_s\)"):
            _model(srv.url, poll_interval_s=0.05, timeout_s=0.3).generate(smooth_image(), PROMPT, num_frames=5)
        assert time.monotonic() - t0 < 3.0  # gave up at the limit, not after many more polls


@developer_mode
def test_a_poll_without_reply_in_time_is_retried(key):
    with VeoStandIn(KEY, polls_before_done=1, slow_first_polls=1, slow_s=1.0) as srv:
        m = _model(srv.url, request_timeout_s=0.4)
        video = m.generate(smooth_image(), PROMPT, num_frames=5)
    # the server saw 2 polls (the slow one answered "not done" after the client gave up; its retry
    # got "done"), the adapter made 1 successful poll: the timed-out request was retried
    assert _count(srv, lambda p: "/operations/" in p) == 2 and m.last_operation["polls"] == 1
    assert video.num_frames == 5


@developer_mode
def test_a_start_without_reply_in_time_is_not_repeated(key):
    with VeoStandIn(KEY, slow_predict_s=1.0) as srv:
        with pytest.raises(VideoServiceError) as ei:
            _model(srv.url, request_timeout_s=0.3).generate(smooth_image(), PROMPT, num_frames=5)
        time.sleep(0.8)  # let the slow handler finish before the server stops
    msg = str(ei.value)
    assert "no reply within request_timeout_s=0.3 s" in msg and "not retried" in msg
    assert _count(srv, _is_predict) == 1


# ----------------------------------------------------------------------------- both modes


MODES = [pytest.param(False, id="developer", marks=developer_mode), pytest.param(True, id="vertex")]


@pytest.mark.parametrize("vertexai", MODES)
def test_safety_filter_is_a_clear_error(key, vertexai):
    reason = "Veo could not generate videos because the input image violates the usage guidelines."
    with VeoStandIn(KEY, rai_filtered=[reason]) as srv:
        with pytest.raises(VideoServiceError, match=r"safety filter removed the video \(1 filtered; reasons: Veo"):
            _model(srv.url, vertexai=vertexai).generate(smooth_image(), PROMPT, num_frames=5)


@pytest.mark.parametrize("vertexai", MODES)
@pytest.mark.parametrize("error, expect", [({"code": 8, "message": "Resource has been exhausted"}, "quota exceeded"),
                                           ({"code": 13, "message": "Internal error"}, "generation failed")])
def test_operation_errors(key, error, expect, vertexai):
    with VeoStandIn(KEY, operation_error=error) as srv:
        with pytest.raises(VideoServiceError, match=expect):
            _model(srv.url, vertexai=vertexai).generate(smooth_image(), PROMPT, num_frames=5)


@pytest.mark.parametrize("vertexai", MODES)
def test_key_never_reaches_logs_output_or_errors(key, caplog, capsys, vertexai):
    caplog.set_level(logging.DEBUG)
    texts = []
    with VeoStandIn(KEY, polls_before_done=1) as srv:
        texts.append(_model(srv.url, vertexai=vertexai).generate(smooth_image(), PROMPT, num_frames=5).model)
    for kw in (dict(rai_filtered=[f"leak {KEY}"]), dict(operation_error={"code": 3, "message": f"bad {KEY}"}),
               dict(quota_first=100)):
        with VeoStandIn(KEY, **kw) as srv:
            with pytest.raises(VideoServiceError) as ei:
                _model(srv.url, vertexai=vertexai, retries=1).generate(smooth_image(), PROMPT, num_frames=5)
            texts.append(str(ei.value))
    out = capsys.readouterr()
    texts += [out.out, out.err, caplog.text]
    assert all(KEY not in t for t in texts)
    assert "***" in texts[1] and "***" in texts[2]


# ----------------------------------------------------------------------------- Vertex AI mode


def test_vertex_mode_requests_follow_its_protocol(key):
    image, last = smooth_image(seed=0), smooth_image(seed=4)
    with VeoStandIn(KEY, polls_before_done=2, fps=8, shift_px=0) as srv:
        m = _model(srv.url, vertexai=True, negative_prompt="cartoon", duration_s=6)
        video = m.generate(image, PROMPT, last_image=last, num_frames=9, seed=7)
    predicts = [r for r in srv.requests if _is_predict(r.path)]
    fetches = [r for r in srv.requests if r.path.endswith(":fetchPredictOperation")]
    assert len(predicts) == 1 and len(srv.requests) == 1 + len(fetches)  # video inline: no download
    assert predicts[0].path == f"/v1beta1/publishers/google/models/{DEFAULT_VERTEX_MODEL}:predictLongRunning"
    for r in predicts + fetches:
        assert r.headers["x-goog-api-key"] == KEY and r.method == "POST"
    inst, params = predicts[0].body["instances"][0], predicts[0].body["parameters"]
    assert inst["prompt"] == PROMPT
    assert params == {"sampleCount": 1, "durationSeconds": 6, "aspectRatio": "16:9", "resolution": "720p",
                      "generateAudio": False, "personGeneration": "allow_adult", "negativePrompt": "cartoon",
                      "seed": 7}
    x0 = (107 - 80) // 2
    assert np.array_equal(_png(inst["image"])[:, x0:x0 + 80], image)
    assert np.array_equal(_png(inst["lastFrame"])[:, x0:x0 + 80], last)
    op = m.last_operation["name"]
    assert len(fetches) == 3 and all(r.body == {"operationName": op} for r in fetches)
    assert fetches[0].path == f"/v1beta1/{op.rsplit('/operations/', 1)[0]}:fetchPredictOperation"
    assert video.frames.shape == (9, 60, 80, 3) and video.seed == 7 and "via Vertex AI" in video.model
    assert mad(video.frames[0], image) < 12.0 and mad(video.frames[-1], last) < 12.0


def test_vertex_mode_quota_retry_and_download_link(key):
    with VeoStandIn(KEY, quota_first=1, polls_before_done=0, serve_uri=True) as srv:
        video = _model(srv.url, vertexai=True).generate(smooth_image(), PROMPT, num_frames=5)
    assert _count(srv, _is_predict) == 2 and video.frames.shape == (5, 60, 80, 3)
    media = [r for r in srv.requests if r.path.startswith("/media/")]
    assert len(media) == 1 and "x-goog-api-key" not in media[0].headers


# ----------------------------------------------------------------------------- versions, keys, inputs


def test_google_genai_3_in_developer_mode_is_one_line_naming_both_fixes(key, monkeypatch):
    monkeypatch.setattr(veo_mod, "_genai_version", lambda genai=None: "3.4.0")
    with pytest.raises(PluginUnavailableError) as ei:
        VeoVideoModel(VeoOptions(base_url="http://127.0.0.1:9"))
    assert str(ei.value) == ("veo3: google-genai 3.4.0 removed Veo from the Gemini Developer API: pip install "
                             "'google-genai<3' (the veo extra pins it) or set veo3.options.vertexai=true")
    assert VeoVideoModel(VeoOptions(base_url="http://127.0.0.1:9", vertexai=True)).backend == "Vertex AI"
    monkeypatch.setattr(veo_mod, "_genai_version", lambda genai=None: "1.41.0")
    with pytest.raises(PluginUnavailableError, match=r"google-genai 1.41.0 cannot send Veo's last frame.*"
                                                     r"'google-genai>=1.42,<3'"):
        VeoVideoModel(VeoOptions())


@pytest.mark.skipif(GENAI_MAJOR < 3, reason="needs google-genai >= 3 installed")
def test_installed_google_genai_3_is_refused_in_developer_mode(key):
    with pytest.raises(PluginUnavailableError, match="removed Veo from the Gemini Developer API"):
        VeoVideoModel(VeoOptions())


def test_missing_key_is_one_line_naming_the_variable(monkeypatch):
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    with pytest.raises(PluginUnavailableError) as ei:
        VeoVideoModel(VeoOptions())
    assert "GEMINI_API_KEY" in str(ei.value) and "\n" not in str(ei.value)
    from d2f_conformance import check_plugin
    (r,) = check_plugin("veo3", kind="video")
    assert r.status == "skipped" and "GEMINI_API_KEY" in r.message


@developer_mode
def test_google_api_key_is_accepted_too(monkeypatch):
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_GENAI_USE_VERTEXAI", raising=False)
    monkeypatch.setenv("GOOGLE_API_KEY", KEY)
    with VeoStandIn(KEY, polls_before_done=0) as srv:
        assert _model(srv.url).generate(smooth_image(), PROMPT, num_frames=5).num_frames == 5


@developer_mode
def test_environment_cannot_switch_the_mode(key, monkeypatch):
    monkeypatch.setenv("GOOGLE_GENAI_USE_VERTEXAI", "true")
    with VeoStandIn(KEY, polls_before_done=0) as srv:
        _model(srv.url).generate(smooth_image(), PROMPT, num_frames=5)
    assert srv.requests[0].path == PREDICT_DEV


def test_inputs_are_validated(key):
    m = _model("http://127.0.0.1:9", vertexai=True)
    with pytest.raises(ValueError, match="image"):
        m.generate(smooth_image().astype(np.float32) / 255, PROMPT, num_frames=5)
    with pytest.raises(ValueError, match="last_image: must be the size"):
        m.generate(smooth_image(), PROMPT, last_image=smooth_image(h=30, w=40), num_frames=5)
    with pytest.raises(ValueError, match="seed"):
        m.generate(smooth_image(), PROMPT, num_frames=5, seed=-1)


@developer_mode
def test_conformance_checks_pass_against_the_stand_in(key):
    assert_conformance_against_stand_in("veo3")
