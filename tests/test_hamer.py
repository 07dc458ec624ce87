"""``hamer`` adapter against a stand-in HaMeR checkout (tests/standins/hamer) that follows the demo
pipeline's documented APIs: detectron2 and the crops get BGR frames, ViTPose RGB; HaMeR answers
in crop units, mirrored for left hands."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("cv2")
pytest.importorskip("PIL")

from d2f_conformance import check_plugin, format_results, make_env  # noqa: E402
from d2f_conformance.checks.common import check_model_input_convention  # noqa: E402
from d2f_conformance.results import CheckFailed  # noqa: E402
from d2f_core import Video  # noqa: E402
from d2f_core.registry import PluginUnavailableError, get_registry  # noqa: E402
from d2f_plugins.hand import hamer as hm  # noqa: E402
from standins.hand_image import render_hand  # noqa: E402
from standins.standin_env import STANDINS, standin_modules  # noqa: E402

DATA = ["_DATA/hamer_ckpts/checkpoints/hamer.ckpt", "_DATA/hamer_ckpts/model_config.yaml",
        "_DATA/data/mano/MANO_RIGHT.pkl", "_DATA/vitpose_ckpts/vitpose+_huge/wholebody.pth"]


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """A HaMeR checkout made of the stand-in code and placeholder data files; detectron2 importable."""
    root = tmp_path / "hamer"
    root.mkdir()
    for name in ("hamer", "detectron2", "vitpose_model.py"):
        (root / name).symlink_to(STANDINS / "hamer" / name)
    for f in DATA + ["vitdet.pkl"]:
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        (root / f).write_bytes(b"placeholder")
    monkeypatch.setenv("HAMER_DIR", str(root))
    with standin_modules(root):  # detectron2 is pip-installed in real life: importable
        yield root


def build(root, **kw):
    return hm._factory(hm.HaMeROptions(detector_weights=str(root / "vitdet.pkl"), **kw))


def test_crop_to_image_known_values():
    kp = np.zeros((21, 2))
    kp[4] = (0.25, -0.1)
    right = hm.crop_to_image(kp, np.array([100.0, 50.0]), 80.0, right=True)
    left = hm.crop_to_image(kp, np.array([100.0, 50.0]), 80.0, right=False)
    assert np.allclose(right[4], (120.0, 42.0)) and np.allclose(left[4], (80.0, 42.0))
    assert np.allclose(right[0], (100.0, 50.0))


def test_unavailable_without_checkout(monkeypatch):
    monkeypatch.delenv("HAMER_DIR", raising=False)
    reason = get_registry().unavailable_reason(get_registry().get("hand", "hamer").manifest)
    assert "HAMER_DIR" in reason and "github.com/geopavlakos/hamer" in reason


def test_missing_weights_are_one_clear_line(checkout):
    with pytest.raises(PluginUnavailableError) as e:
        get_registry().create("hand", "hamer", {})
    assert "\n" not in str(e.value) and "hand.options.detector_weights" in str(e.value)
    (checkout / "_DATA/data/mano/MANO_RIGHT.pkl").unlink()
    with pytest.raises(PluginUnavailableError, match="mano.is.tue.mpg.de"):
        build(checkout)


def test_builds_on_the_cpu_although_the_upstream_detector_calls_cuda(checkout):
    cuda = torch.nn.Module.cuda
    det = build(checkout)                                   # the stand-in calls .cuda() like upstream
    assert torch.nn.Module.cuda is cuda                     # the no-op patch is undone
    assert next(det.detector.model.parameters()).device.type == "cpu"


def test_conformance_passes_on_the_standin(checkout):
    res = check_plugin("hamer", "hand", options={"detector_weights": str(checkout / "vitdet.pkl")})
    assert all(r.status == "passed" for r in res), format_results(res)


def test_thumb_tip_of_right_and_left_hands(checkout):
    det = build(checkout)
    frames, tips = [], []
    for left, cx in ((False, 160), (True, 190), (False, 120)):
        rgb, tip = render_hand(left=left, marker=True, cx=cx)
        frames.append(rgb)
        tips.append(tip)
    frames.append(np.full_like(frames[0], 235))
    tr = det.detect(Video(frames=np.stack(frames)))
    assert tr.present.tolist() == [True, True, True, False]
    assert np.abs(tr.thumb_tip[:3] - np.array(tips)).max() < 1.5, (tr.thumb_tip, tips)
    right_only = build(checkout, hand="right").detect(Video(frames=np.stack(frames)))
    assert right_only.present.tolist() == [True, False, True, False]


class RGBEverywhere(hm.HaMeRDetector):
    """Feeds detectron2 and HaMeR's crops RGB frames (they expect cv2's BGR)."""

    def model_input(self, image):
        return np.ascontiguousarray(image)


def test_bgr_edge(checkout, tmp_path):
    det = build(checkout)
    check_model_input_convention(det, make_env(tmp_path), "hand")        # declared BGR, gives BGR
    bad = RGBEverywhere(det.detector, det.pose, det.model, det.model_cfg, det.dataset_cls, det.options,
                        det.root, det.to_device)
    with pytest.raises(CheckFailed, match="model input is RGB but the model expects BGR"):
        check_model_input_convention(bad, make_env(tmp_path), "hand")
    rgb, tip = render_hand(marker=True)
    tr = bad.detect(Video(frames=np.stack([rgb, rgb])))
    assert not tr.present.any() or np.abs(tr.thumb_tip[0] - tip).max() > 5    # and the thumb is lost
