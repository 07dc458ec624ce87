"""``grounded-sam2`` with real libraries (transformers' Grounding DINO, the sam2 package) on tiny
random-weight models built here: the output contract, the prompt format, and that boxes and point
prompts reach SAM 2 in image pixels with labels 1/0."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("sam2")
pytest.importorskip("PIL")

from d2f_conformance import check_component, check_plugin, format_results, make_env  # noqa: E402
from d2f_conformance.checks.common import check_model_input_convention  # noqa: E402
from d2f_conformance.results import CheckFailed  # noqa: E402
from d2f_conformance.scenes import standard_scene  # noqa: E402
from d2f_core import DataError  # noqa: E402
from d2f_core.registry import PluginUnavailableError, get_registry  # noqa: E402
from d2f_plugins.segment import grounded_sam2 as gs  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return gs.build_tiny_models(tmp_path_factory.mktemp("grounded-sam2"), seed=0)


@pytest.fixture(scope="module")
def segmenter(tiny):
    return gs._factory(gs.GroundedSAM2Options(**tiny))


class Spy:
    """Wraps SAM 2's image predictor, recording set_image and predict calls."""

    def __init__(self, predictor):
        self.predictor = predictor
        self.images, self.calls = [], []

    def set_image(self, image):
        self.images.append(np.array(image))
        return self.predictor.set_image(image)

    def predict(self, **kw):
        self.calls.append({k: (None if v is None else np.array(v)) if k != "multimask_output" else v
                           for k, v in kw.items()})
        return self.predictor.predict(**kw)


def spied(segmenter, **opts):
    o = segmenter.options.model_copy(update=opts)
    return gs.GroundedSAM2Segmenter(segmenter.processor, segmenter.detector, Spy(segmenter.sam.predictor
                                    if isinstance(segmenter.sam, Spy) else segmenter.sam), o)


@pytest.fixture(scope="module")
def image():
    return np.array(standard_scene().video.frames[0])  # 64 x 48: not square, so (x, y) / (H, W) mix-ups show


def test_prompt_format():
    assert gs.grounding_prompt("Oven  Door") == "oven door."
    assert gs.grounding_prompt(" bread. ") == "bread."


def test_missing_weights_is_one_clear_line(tmp_path):
    with pytest.raises(PluginUnavailableError) as e:
        get_registry().create("segmenter", "grounded-sam2", {})
    msg = str(e.value)
    assert "\n" not in msg and "segmenter.options.detector" in msg and "segmenter.options.sam2_checkpoint" in msg
    with pytest.raises(PluginUnavailableError, match="not available locally"):  # a hub id not in the cache
        gs._load_detector("IDEA-Research/no-such-model-here", "cpu")
    with pytest.raises(DataError, match="segmenter.options.detector: folder"):
        gs._load_detector(str(tmp_path / "missing" / "grounding-dino"), "cpu")


def test_segment_end_to_end_box_reaches_sam2(segmenter, image):
    seg = spied(segmenter)
    calls = []
    post = seg.processor.post_process_grounded_object_detection

    def spy_post(*a, **kw):
        calls.append(kw)
        return post(*a, **kw)

    seg.processor.post_process_grounded_object_detection = spy_post
    try:
        mask = seg.segment(image, "Box")
    finally:
        del seg.processor.post_process_grounded_object_detection
    assert mask.dtype == np.bool_ and mask.shape == (48, 64)
    kw = calls[0]
    assert kw["text_threshold"] == 0.3 and kw.get("threshold", kw.get("box_threshold")) == 0.4
    assert [tuple(s) for s in kw["target_sizes"]] == [(48, 64)]       # (H, W): boxes in image pixels
    box, score = seg.detect(image, "box")
    call = seg.sam.calls[-1]
    assert np.allclose(call["box"], box) and call["point_coords"] is None and call["multimask_output"] is False
    assert 0 <= box[0] <= box[2] <= 64 and 0 <= box[1] <= box[3] <= 48 and score >= 0.4
    assert np.array_equal(seg.sam.images[0], image)                    # RGB uint8, unchanged


def test_point_prompts_reach_sam2_in_pixels_with_labels(segmenter, image):
    seg = spied(segmenter)
    pts = np.array([[20.0, 30.0], [60.0, 5.0]], np.float32)
    mask = seg.segment(image, "box", points=pts, labels=np.array([1, 0]))
    assert mask.dtype == np.bool_ and mask.shape == (48, 64)
    call = seg.sam.calls[-1]
    assert np.array_equal(call["point_coords"], pts)                   # (x, y) pixels, as given
    assert call["point_labels"].tolist() == [1, 0]
    assert call["box"] is not None and call["multimask_output"] is False
    seg2 = spied(segmenter, points_with_box=False)
    seg2.segment(image, "box", points=pts, labels=np.array([1, 0]))
    assert seg2.sam.calls[-1]["box"] is None and seg2.sam.calls[-1]["multimask_output"] is True


def test_no_box_found(segmenter, image):
    seg = spied(segmenter, box_threshold=1.0)                          # nothing can pass
    with pytest.raises(DataError, match="no 'box' found"):
        seg.segment(image, "box")
    mask = seg.segment(image, "box", points=np.array([[20.0, 30.0]]), labels=np.array([1]))
    call = seg.sam.calls[-1]
    assert call["box"] is None and call["point_labels"].tolist() == [1] and mask.shape == (48, 64)
    with pytest.raises(DataError, match="no 'box' found"):             # only negative points: still nothing
        seg.segment(image, "box", points=np.array([[20.0, 30.0]]), labels=np.array([0]))


def test_image_embedding_is_reused_for_the_same_image(segmenter, image):
    seg = spied(segmenter)
    seg.segment(image, "box")
    seg.segment(image, "box", points=np.array([[20.0, 30.0]]), labels=np.array([1]))
    assert len(seg.sam.images) == 1
    seg.segment(np.ascontiguousarray(image[:, ::-1]), "box")
    assert len(seg.sam.images) == 2


def test_conformance_on_tiny_models(segmenter):
    res = check_component(segmenter, "segmenter", skip=["segment_point_prompts"])
    assert all(r.status == "passed" for r in res), format_results(res)


class BGRModelInput(gs.GroundedSAM2Segmenter):
    def model_input(self, image):
        return super().model_input(image)[:, :, ::-1]


def test_bgr_model_input_is_caught(segmenter, tmp_path):
    bad = BGRModelInput(segmenter.processor, segmenter.detector, segmenter.sam, segmenter.options)
    with pytest.raises(CheckFailed, match="model input is BGR but the model expects RGB"):
        check_model_input_convention(bad, make_env(tmp_path), "segmenter")


@pytest.mark.slow
def test_d2f_check_builds_tiny_models():
    res = check_plugin("grounded-sam2", "segmenter")
    assert not [r for r in res if r.status == "failed"], format_results(res)
    skipped = {r.check for r in res if r.status == "skipped"}
    assert skipped == {"segment_point_prompts"}
