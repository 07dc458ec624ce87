"""``wan2.1`` adapter on tiny random-weight Wan 2.1 pipelines (I2V and FLF2V) built here, saved and
reloaded with ``WanImageToVideoPipeline.from_pretrained``. The frames are noise; what is checked is
the adapter's contract: counts, sizes, dtype, seeds, what reaches the pipeline."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("transformers")
pytest.importorskip("ftfy")
pytest.importorskip("accelerate")

from d2f_core import Video  # noqa: E402
from d2f_core.registry import PluginUnavailableError  # noqa: E402
from d2f_plugins.video.wan import (FLF2V_REPO, I2V_REPO, WanOptions, WanVideoModel,  # noqa: E402
                                   model_resolution, snap_num_frames)

PROMPT = "push the box to the right by one hand. The camera holds a still pose, not zooming in or out."


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    from d2f_plugins.video.wan_tiny import build_tiny_wan
    root = tmp_path_factory.mktemp("wan")
    return {"i2v": build_tiny_wan(root / "i2v"), "flf2v": build_tiny_wan(root / "flf2v", flf2v=True)}


def _opts(folder, **kw):
    o = dict(weights=str(folder), max_area=48 * 64, num_inference_steps=2)
    o.update(kw)
    return WanOptions(**o)


@pytest.fixture(scope="module")
def flf2v(folders):
    return WanVideoModel(_opts(folders["flf2v"]))


@pytest.fixture(scope="module")
def i2v(folders):
    return WanVideoModel(_opts(folders["i2v"]))


def _image(h=48, w=64, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_snapping_rules():
    assert [snap_num_frames(n) for n in (2, 5, 6, 7, 9, 48, 49, 50, 81)] == [5, 5, 5, 9, 9, 49, 49, 49, 81]
    assert model_resolution(480, 640) == (544, 720)  # 4:3 image at ~480*832 pixels, multiples of 16
    assert model_resolution(48, 64, max_area=48 * 64) == (48, 64)
    assert model_resolution(100, 100, fixed=(480, 832)) == (480, 832)
    assert model_resolution(100, 100, fixed=(500, 850)) == (496, 848)


def test_saved_folder_is_a_diffusers_i2v_pipeline(folders):
    for name, folder in folders.items():
        index = json.loads((folder / "model_index.json").read_text())
        assert index["_class_name"] == "WanImageToVideoPipeline"
        cfg = json.loads((folder / "transformer" / "config.json").read_text())
        clip = json.loads((folder / "image_encoder" / "config.json").read_text())
        tokens = (clip["image_size"] // clip["patch_size"]) ** 2 + 1
        assert cfg["pos_embed_seq_len"] == (2 * tokens if name == "flf2v" else None)


def test_generate_frames_counts_sizes_dtype(flf2v):
    image = _image()
    v = flf2v.generate(image, PROMPT, num_frames=9, seed=0)
    assert isinstance(v, Video)
    assert v.frames.shape == (9, 48, 64, 3) and v.frames.dtype == np.uint8
    assert v.fps == 16.0 and v.seed == 0 and v.prompt == PROMPT
    assert v.frames.std() > 5  # noise from random weights, but not a constant image
    assert "snapped" not in v.model and "generated at 64x48" in v.model


def test_num_frames_snapped_to_4k_plus_1_and_said_so(flf2v):
    v = flf2v.generate(_image(), PROMPT, num_frames=6, seed=0)
    assert v.num_frames == 5 and "frames snapped to 4k+1: asked 6, made 5" in v.model
    v = flf2v.generate(_image(), PROMPT, num_frames=7, seed=0)
    assert v.num_frames == 9


def test_model_resolution_and_resize_back(folders):
    m = WanVideoModel(_opts(folders["i2v"], height=32, width=32))
    image = _image(h=30, w=50)
    assert m.resolution(30, 50) == (32, 32)
    x = m.model_input(image)
    assert x.shape == (32, 32, 3) and x.dtype == np.uint8
    v = m.generate(image, PROMPT, num_frames=5, seed=1)
    assert v.frames.shape == (5, 30, 50, 3) and "generated at 32x32, resized to 50x30" in v.model
    # model_input keeps RGB and 0-255 (what the PIL image handed to the pipeline holds)
    const = np.zeros((40, 56, 3), np.uint8)
    const[...] = (200, 100, 20)
    assert np.array_equal(np.unique(m.model_input(const).reshape(-1, 3), axis=0), [[200, 100, 20]])


def test_seed_determinism(flf2v):
    image = _image()
    a = flf2v.generate(image, PROMPT, num_frames=5, seed=3).frames
    b = flf2v.generate(image, PROMPT, num_frames=5, seed=3).frames
    c = flf2v.generate(image, PROMPT, num_frames=5, seed=4).frames
    assert np.array_equal(a, b)
    assert np.mean(np.abs(a.astype(int) - c.astype(int))) > 1.0
    rand = flf2v.generate(image, PROMPT, num_frames=5, seed=None)
    assert isinstance(rand.seed, int)  # the seed used is recorded, so the run can be repeated
    assert np.array_equal(flf2v.generate(image, PROMPT, num_frames=5, seed=rand.seed).frames, rand.frames)


def test_end_frame_reaches_the_pipeline_as_last_image(flf2v, monkeypatch):
    image, last = _image(seed=0), _image(seed=1)
    seen = {}
    orig_prepare, orig_encode = flf2v.pipe.prepare_latents, flf2v.pipe.encode_image

    def prepare(image_t, *args, **kw):
        seen["first"], seen["last"] = image_t.clone(), (args[-1] if len(args) == 10 else kw.get("last_image"))
        return orig_prepare(image_t, *args, **kw)

    def encode(images, device=None):
        seen["clip_images"] = images
        return orig_encode(images, device)

    monkeypatch.setattr(flf2v.pipe, "prepare_latents", prepare)
    monkeypatch.setattr(flf2v.pipe, "encode_image", encode)
    with_end = flf2v.generate(image, PROMPT, last_image=last, num_frames=5, seed=0)
    # the pipeline's video condition holds the first frame and the end frame, in that order,
    # as the model-resolution images scaled to -1..1
    expect_first = flf2v.model_input(image).astype(np.float32) / 127.5 - 1
    expect_last = flf2v.model_input(last).astype(np.float32) / 127.5 - 1
    got_first = seen["first"][0].permute(1, 2, 0).numpy()
    got_last = seen["last"][0].permute(1, 2, 0).numpy()
    assert np.allclose(got_first, expect_first, atol=1e-5) and np.allclose(got_last, expect_last, atol=1e-5)
    assert len(seen["clip_images"]) == 2  # CLIP sees first and last frame
    assert np.array_equal(np.asarray(seen["clip_images"][1]), flf2v.model_input(last))
    # and the end frame changes the result (same seed)
    monkeypatch.undo()
    without = flf2v.generate(image, PROMPT, num_frames=5, seed=0)
    assert not np.array_equal(with_end.frames, without.frames)
    assert "first frame used as both CLIP contexts" in without.model


def test_i2v_weights_refuse_last_image(i2v):
    assert "end_frame_conditioning" not in i2v.capabilities and i2v.variant == "I2V"
    with pytest.raises(ValueError, match=rf"last_image: .*{FLF2V_REPO}"):
        i2v.generate(_image(), PROMPT, last_image=_image(seed=2), num_frames=5, seed=0)
    assert i2v.generate(_image(), PROMPT, num_frames=5, seed=0).frames.shape == (5, 48, 64, 3)


def test_inputs_validated(flf2v):
    with pytest.raises(ValueError, match="image"):
        flf2v.generate(_image().astype(np.float32) / 255, PROMPT, num_frames=5)
    with pytest.raises(ValueError, match="num_frames"):
        flf2v.generate(_image(), PROMPT, num_frames=0)
    with pytest.raises(ValueError, match="last_image: must be the size"):
        flf2v.generate(_image(), PROMPT, last_image=_image(h=32, w=32), num_frames=5)
    with pytest.raises(Exception, match="height and width go together"):
        WanOptions(weights="x", height=32)


def test_missing_or_wrong_weights_one_line(tmp_path):
    for opts, expect in ((WanOptions(), "video.options.weights is not set"),
                         (WanOptions(weights=str(tmp_path / "nope")), "does not exist"),
                         (WanOptions(weights=str(tmp_path)), "no model_index.json")):
        with pytest.raises(PluginUnavailableError) as ei:
            WanVideoModel(opts)
        msg = str(ei.value)
        assert expect in msg and I2V_REPO in msg and FLF2V_REPO in msg and "never downloads" in msg
        assert "\n" not in msg
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "WanPipeline"}))
    with pytest.raises(PluginUnavailableError, match="holds a WanPipeline pipeline, not a Wan 2.1 image-to-video"):
        WanVideoModel(WanOptions(weights=str(tmp_path)))


def test_conformance_checks_pass_on_the_tiny_pipelines(flf2v, i2v):
    from d2f_conformance import all_passed, check_component, format_results, make_env
    for model in (flf2v, i2v):
        results = check_component(model, "video", env=make_env())
        assert all_passed(results), format_results(results)
        assert not [r for r in results if r.status == "skipped"], format_results(results)
