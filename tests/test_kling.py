"""``kling`` adapter against local servers speaking the Kling image2video protocol.

Servers: the conformance stand-in (``d2f_conformance.standins.kling.KlingStandIn``, with failure
knobs) and an independently written variant (``tests/servers/kling_variant.py``, PyJWT
verification, CDN on another port, 24 fps video). Nothing here talks to the real service.
"""

from __future__ import annotations

import base64
import io
import logging
import time

import numpy as np
import pytest

pytest.importorskip("PIL")
pytest.importorskip("imageio_ffmpeg")

from d2f_core import Video  # noqa: E402
from d2f_core.registry import PluginUnavailableError  # noqa: E402
from d2f_plugins.video._adapter_util import VideoServiceError  # noqa: E402
from d2f_plugins.video.kling import KlingOptions, KlingVideoModel, make_jwt  # noqa: E402
from d2f_conformance.standins.kling import KlingStandIn, verify_jwt  # noqa: E402
from servers.conformance import assert_conformance_against_stand_in  # noqa: E402
from servers.images import mad, smooth_image  # noqa: E402

AK, SK = "ak-d2f-test-ACCESS-1234", "sk-d2f-test-SECRET-9876-0123456789abcdef"
PROMPT = "push the box to the right by one hand. The camera holds a still pose, not zooming in or out."


@pytest.fixture
def keys(monkeypatch):
    monkeypatch.setenv("KLING_ACCESS_KEY", AK)
    monkeypatch.setenv("KLING_SECRET_KEY", SK)


def _model(url, **kw):
    opts = dict(base_url=url, poll_interval_s=0.01, backoff_s=0.01, timeout_s=30.0)
    opts.update(kw)
    return KlingVideoModel(KlingOptions(**opts))


def _decode_png_b64(s):
    from PIL import Image
    raw = base64.b64decode(s, validate=True)
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    return np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))


# --------------------------------------------------------------------------- JWT


def test_jwt_claims_decode_with_pyjwt():
    jwt = pytest.importorskip("jwt")
    now = time.time()
    token = make_jwt(AK, SK)
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "HS256", "typ": "JWT"}
    claims = jwt.decode(token, SK, algorithms=["HS256"], issuer=AK)
    assert claims["iss"] == AK
    assert abs(claims["exp"] - (now + 1800)) <= 2
    assert abs(claims["nbf"] - (now - 5)) <= 2
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, "another-secret-0123456789abcdefghijkl", algorithms=["HS256"])
    # and our verifier agrees with PyJWT about time and signature
    assert verify_jwt(token, AK, SK) == (0, "")
    assert verify_jwt(token, AK, "wrong")[0] == 1002
    assert verify_jwt(token, "other-ak", SK)[0] == 1002
    assert verify_jwt(make_jwt(AK, SK, now=now - 4000), AK, SK)[0] == 1004  # expired
    assert verify_jwt(make_jwt(AK, SK, now=now + 60), AK, SK)[0] == 1003  # nbf in the future
    # a token PyJWT makes is accepted by our verifier (same algorithm, not just same code)
    other = jwt.encode({"iss": AK, "exp": int(now) + 1800, "nbf": int(now) - 5}, SK, algorithm="HS256")
    assert verify_jwt(other, AK, SK) == (0, "")


# --------------------------------------------------------------------------- the happy path


def test_generate_sends_documented_request_and_returns_camera_sized_frames(keys):
    jwt = pytest.importorskip("jwt")
    image = smooth_image()
    with KlingStandIn(AK, SK, polls_before_done=3, fps=8) as srv:
        m = _model(srv.url, negative_prompt="blurry", cfg_scale=0.5, model_name="kling-v1-6")
        video = m.generate(image, PROMPT, num_frames=9, seed=3)
    posts = [r for r in srv.requests if r.method == "POST"]
    polls = [r for r in srv.requests if r.method == "GET" and r.path.startswith("/v1/videos/image2video/")]
    media = [r for r in srv.requests if r.path.startswith("/media/")]
    assert len(posts) == 1 and posts[0].path == "/v1/videos/image2video"
    body = posts[0].body
    assert set(body) == {"model_name", "image", "prompt", "duration", "mode", "negative_prompt", "cfg_scale"}
    assert body["model_name"] == "kling-v1-6" and body["prompt"] == PROMPT
    assert body["duration"] == "5" and body["mode"] == "std"  # strings, as documented
    assert body["negative_prompt"] == "blurry" and body["cfg_scale"] == 0.5
    assert not body["image"].startswith("data:")
    sent = _decode_png_b64(body["image"])
    assert sent.shape == (300, 400, 3)  # 60x80 upscaled to Kling's 300 px minimum, aspect kept
    from PIL import Image
    assert mad(np.asarray(Image.fromarray(sent).resize((80, 60), Image.BICUBIC)), image) < 3.0
    # every request carried a valid token; polls hit the task the create call returned
    for r in posts + polls:
        auth = r.headers["Authorization"]
        assert auth.startswith("Bearer ")
        assert jwt.decode(auth[7:], SK, algorithms=["HS256"], issuer=AK)["iss"] == AK
    task_id = m.last_task["task_id"]
    assert [r.path for r in polls] == [f"/v1/videos/image2video/{task_id}"] * 4  # 3 pending + 1 done
    assert m.last_task["statuses"] == ["submitted", "processing", "processing", "succeed"]
    # the token is not sent to the video URL (usually a CDN host)
    assert len(media) == 1 and "Authorization" not in media[0].headers
    # frames: requested count, camera size, uint8 RGB, first frame is the image (not BGR)
    assert isinstance(video, Video)
    assert video.frames.shape == (9, 60, 80, 3) and video.frames.dtype == np.uint8
    assert m.last_task["received_frames"] == 40  # 5 s x 8 fps from the stand-in
    assert video.fps == pytest.approx(8 / (39 / 8.0))  # same 4.875 s duration with 9 frames
    d_rgb, d_bgr = mad(video.frames[0], image), mad(video.frames[0], image[..., ::-1])
    assert d_rgb < 12.0 and d_bgr > 3 * d_rgb
    assert video.seed is None and "resampled to 9" in video.model and "resized to 80x60" in video.model
    # the stand-in drifts the image right by 6 px of its 72 px-high video over the clip: the last
    # frame is the image shifted right by 6 * 60 / 72 = 5 px
    shifted = np.roll(image, 5, axis=1)
    assert mad(video.frames[-1][:, 8:], shifted[:, 8:]) < mad(video.frames[-1][:, 8:], image[:, 8:])


def test_end_frame_goes_to_image_tail_and_ends_the_video(keys):
    image, last = smooth_image(seed=0), smooth_image(seed=5)
    with KlingStandIn(AK, SK, polls_before_done=1, shift_px=0) as srv:
        video = _model(srv.url, mode="pro").generate(image, PROMPT, last_image=last, num_frames=5)
    body = [r for r in srv.requests if r.method == "POST"][0].body
    assert body["mode"] == "pro"
    from PIL import Image
    tail = np.asarray(Image.fromarray(_decode_png_b64(body["image_tail"])).resize((80, 60), Image.BICUBIC))
    assert mad(tail, last) < 3.0
    assert mad(video.frames[0], image) < 12.0
    assert mad(video.frames[-1], last) < 12.0 and mad(video.frames[-1], image) > 30.0


def test_mode_rule_for_end_frames(keys):
    """Default (auto): pro with an end frame, std without; explicit std with an end frame is refused
    before anything is sent unless the model's std mode takes image_tail (kling-v1)."""
    from d2f_plugins.video.kling import choose_mode
    assert choose_mode("auto", "kling-v2-1", True) == "pro"
    assert choose_mode("auto", "kling-v2-1", False) == "std"
    assert choose_mode("std", "kling-v1", True) == "std"
    assert choose_mode("pro", "kling-v1-6", False) == "pro"
    image, last = smooth_image(seed=0), smooth_image(seed=5)
    with KlingStandIn(AK, SK, polls_before_done=0, shift_px=0) as srv:
        # the default options: first-last-frame works (the stand-in, like the service, refuses
        # image_tail in std mode for this model)
        _model(srv.url).generate(image, PROMPT, last_image=last, num_frames=5)
        _model(srv.url).generate(image, PROMPT, num_frames=5)
        with pytest.raises(ValueError, match=r"std mode refuses an end frame.*kling-v2-1.*mode=pro"):
            _model(srv.url, mode="std").generate(image, PROMPT, last_image=last, num_frames=5)
        _model(srv.url, mode="std", model_name="kling-v1").generate(image, PROMPT, last_image=last, num_frames=5)
    posts = [r.body for r in srv.requests if r.method == "POST"]
    assert [(b["model_name"], b["mode"], "image_tail" in b) for b in posts] == [
        ("kling-v2-1", "pro", True), ("kling-v2-1", "std", False), ("kling-v1", "std", True)]
    # and the stand-in does refuse what the adapter now avoids
    with KlingStandIn(AK, SK, polls_before_done=0) as srv:
        m = _model(srv.url)
        m.options = m.options.model_copy(update={"mode": "pro"})
        from d2f_plugins.video import kling as kmod
        real = kmod.choose_mode
        kmod.choose_mode = lambda mode, name, end: "std"
        try:
            with pytest.raises(VideoServiceError, match="image_tail is not supported in std mode"):
                m.generate(image, PROMPT, last_image=last, num_frames=5)
        finally:
            kmod.choose_mode = real


def test_works_against_an_independent_server_with_cdn_and_24fps(keys):
    pytest.importorskip("jwt")
    from servers.kling_variant import VariantKling
    srv = VariantKling(AK, SK, processing_polls=3, frames=121, fps=24)
    try:
        image = smooth_image(h=310, w=420)
        m = _model(srv.url)
        video = m.generate(image, PROMPT, num_frames=49)
    finally:
        srv.close()
    assert video.frames.shape == (49, 310, 420, 3)
    assert m.last_task["received_frames"] == 121 and m.last_task["received_size"] == (124, 168)
    assert video.fps == pytest.approx(48 / (120 / 24))
    assert [r["method"] for r in srv.seen] == ["POST"] + ["GET"] * 4
    assert all("claims" in r for r in srv.seen)  # PyJWT accepted every token
    assert len(srv.cdn_seen) == 1 and "Authorization" not in srv.cdn_seen[0]["headers"]
    assert "?sig=abc" in srv.cdn_seen[0]["path"]
    assert mad(video.frames[0], image) < 12.0


# --------------------------------------------------------------------------- failures


def test_rate_limit_then_success_retries_with_backoff(keys):
    with KlingStandIn(AK, SK, rate_limit_first=2, retry_after=0.15) as srv:
        t0 = time.monotonic()
        video = _model(srv.url, backoff_s=0.01).generate(smooth_image(), PROMPT, num_frames=5)
        elapsed = time.monotonic() - t0
    posts = [r for r in srv.requests if r.method == "POST"]
    assert len(posts) == 3 and video.num_frames == 5
    assert elapsed >= 0.3  # waited the server's Retry-After (0.15 s) twice, not the 0.01 s backoff


def test_server_errors_on_create_and_poll_are_retried(keys):
    with KlingStandIn(AK, SK, server_errors_first=2, poll_errors_first=2, polls_before_done=1) as srv:
        m = _model(srv.url)
        video = m.generate(smooth_image(), PROMPT, num_frames=5)
    assert len([r for r in srv.requests if r.method == "POST"]) == 3
    assert len([r for r in srv.requests if r.method == "GET" and "/image2video/" in r.path]) == 4
    assert video.num_frames == 5 and m.last_task["polls"] == 2


def test_rate_limit_that_never_ends_gives_up_with_a_clear_error(keys):
    with KlingStandIn(AK, SK, rate_limit_first=100) as srv:
        with pytest.raises(VideoServiceError, match=r"failed 3 time\(s\).*rate or concurrency limit.*1302"):
            _model(srv.url, retries=2).generate(smooth_image(), PROMPT, num_frames=5)
    assert len([r for r in srv.requests if r.method == "POST"]) == 3


def test_exhausted_account_is_not_retried(keys):
    with KlingStandIn(AK, SK, account_code=1102) as srv:
        with pytest.raises(VideoServiceError, match=r"account problem.*code 1102"):
            _model(srv.url).generate(smooth_image(), PROMPT, num_frames=5)
    assert len([r for r in srv.requests if r.method == "POST"]) == 1


def test_failed_task_reports_the_service_message(keys):
    with KlingStandIn(AK, SK, polls_before_done=2, fail_task_msg="Image quality too low") as srv:
        m = _model(srv.url)
        with pytest.raises(VideoServiceError, match=r"task \w+ failed: Image quality too low"):
            m.generate(smooth_image(), PROMPT, num_frames=5)
    assert m.last_task["statuses"] == ["submitted", "processing", "failed"]


def test_bad_token_is_refused_by_the_server_and_reported(keys, monkeypatch):
    with KlingStandIn(AK, "the-server-knows-another-secret-0123456789") as srv:
        with pytest.raises(VideoServiceError) as ei:
            _model(srv.url).generate(smooth_image(), PROMPT, num_frames=5)
    msg = str(ei.value)
    assert "authentication failed" in msg and "code 1002" in msg and "KLING_SECRET_KEY" in msg
    assert SK not in msg and AK not in msg
    assert len([r for r in srv.requests if r.method == "POST"]) == 1  # not retried


def test_slow_task_hits_the_overall_timeout(keys):
    with KlingStandIn(AK, SK, polls_before_done=10_000) as srv:
        t0 = time.monotonic()
        with pytest.raises(VideoServiceError, match=r"not finished after 0.3 s \(timeout_s"):
            _model(srv.url, poll_interval_s=0.05, timeout_s=0.3).generate(smooth_image(), PROMPT, num_frames=5)
        assert time.monotonic() - t0 < 2.5  # gave up at the limit, not after many more polls


def test_unreachable_server_is_a_clear_error(keys):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with pytest.raises(VideoServiceError, match=r"creating the task failed 2 time\(s\)"):
        _model(f"http://127.0.0.1:{port}", retries=1).generate(smooth_image(), PROMPT, num_frames=5)


def test_inputs_are_validated(keys):
    m = _model("http://127.0.0.1:9")
    with pytest.raises(ValueError, match="image: aspect ratio"):
        m.generate(np.zeros((20, 100, 3), np.uint8), PROMPT, num_frames=5)
    with pytest.raises(ValueError, match="last_image: must be the size"):
        m.generate(smooth_image(), PROMPT, last_image=smooth_image(h=30, w=40), num_frames=5)
    with pytest.raises(ValueError, match="num_frames"):
        m.generate(smooth_image(), PROMPT, num_frames=1)
    with pytest.raises(Exception, match="duration"):
        KlingOptions(duration=7)


# --------------------------------------------------------------------------- keys


def test_missing_keys_give_one_line_naming_the_variables(monkeypatch):
    monkeypatch.delenv("KLING_ACCESS_KEY", raising=False)
    monkeypatch.setenv("KLING_SECRET_KEY", SK)
    with pytest.raises(PluginUnavailableError) as ei:
        KlingVideoModel(KlingOptions())
    assert "KLING_ACCESS_KEY" in str(ei.value) and "KLING_SECRET_KEY" not in str(ei.value)
    assert "\n" not in str(ei.value) and SK not in str(ei.value)
    from d2f_core.registry import get_registry
    reg = get_registry()
    reason = reg.unavailable_reason(reg.get("video", "kling").manifest)
    assert "KLING_ACCESS_KEY" in reason


def test_keys_never_reach_logs_output_or_errors(keys, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    texts = []
    with KlingStandIn(AK, SK) as srv:
        video = _model(srv.url).generate(smooth_image(), PROMPT, num_frames=5)
        texts.append(video.model)
    for kw in (dict(fail_task_msg=f"echo {AK} {SK}"), dict(account_code=1102)):
        with KlingStandIn(AK, SK, **kw) as srv:
            with pytest.raises(VideoServiceError) as ei:
                _model(srv.url).generate(smooth_image(), PROMPT, num_frames=5)
            texts.append(str(ei.value))
    out = capsys.readouterr()
    texts += [out.out, out.err, caplog.text]
    for t in texts:
        assert AK not in t and SK not in t
    assert "***" in texts[1]  # a server echoing the keys is scrubbed


# --------------------------------------------------------------------------- conformance


def test_conformance_checks_pass_against_the_stand_in_and_it_stops(keys):
    assert_conformance_against_stand_in("kling")


def test_d2f_check_skips_without_keys(monkeypatch):
    monkeypatch.delenv("KLING_ACCESS_KEY", raising=False)
    monkeypatch.delenv("KLING_SECRET_KEY", raising=False)
    from d2f_conformance import check_plugin
    (r,) = check_plugin("kling", kind="video")
    assert r.check == "build" and r.status == "skipped" and "KLING_ACCESS_KEY" in r.message
