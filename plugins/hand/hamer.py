"""``hamer`` hand detector: HaMeR's demo pipeline (ViTDet people -> ViTPose hands -> HaMeR).

Install (HaMeR is not on PyPI; follow https://github.com/geopavlakos/hamer#installation)::

    pip install 'dream2flow[hamer]'
    git clone --recursive https://github.com/geopavlakos/hamer && cd hamer
    pip install -e .[all]                     # HaMeR and its detectron2
    pip install -v -e third-party/ViTPose     # ViTPose (mmpose) for the hand boxes
    bash fetch_demo_data.sh                   # _DATA/hamer_ckpts, _DATA/vitpose_ckpts
    # MANO (licence): register at https://mano.is.tue.mpg.de, put MANO_RIGHT.pkl in _DATA/data/mano/
    export HAMER_DIR=$PWD

HaMeR's ``DefaultPredictor_Lazy`` moves the detector to CUDA unconditionally; on the CPU the adapter
builds it with ``Module.cuda`` made a no-op, so it stays there. ``device: auto`` (the default) is
CUDA when available; ``dtype: auto`` is float32 (HaMeR's demo runs float32).

The person detector's weights (ViTDet, ``model_final_f05665.pkl`` from
https://dl.fbaipublicfiles.com/detectron2/ViTDet/COCO/cascade_mask_rcnn_vitdet_h/f328730692/model_final_f05665.pkl)
are ``hand.options.detector_weights``: the upstream demo downloads them, this adapter never does.
HaMeR and ViTPose load their data with paths relative to the checkout, so the pipeline is built from
``$HAMER_DIR`` (the working directory is restored afterwards).

Per frame (as ``demo.py``): detectron2's ViTDet finds people (class 0, score > ``person_threshold``)
in the **BGR** frame; ViTPose (``ViTPoseModel.predict_pose``, **RGB** frame) gives whole-body
keypoints whose last 42 rows are the left and right hands; a hand with more than
``min_hand_keypoints - 1`` keypoints above ``keypoint_threshold`` gives a box (``hand`` chooses
left/right/any; among several, the most confident). ``ViTDetDataset`` (the **BGR** frame, the box,
``rescale_factor``) crops it (mirrored for a left hand) and HaMeR predicts 21 keypoints in OpenPose
order (4 = thumb tip) in crop units; they go back to image pixels with
``x = box_center_x + box_size * s * kx``, ``y = box_center_y + box_size * ky`` where ``s`` is -1
for a left hand (its crop was mirrored) and +1 for a right one.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any, ClassVar, Iterator, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from d2f_core import DataError, HandTrack, Manifest, ModelInputSpec, Video, hookimpl
from d2f_core.devices import DEVICE_HELP, DTYPE_HELP, DTypeName, Needs, autocast, choose
from d2f_core.registry import PluginUnavailableError
from d2f_core.validate import check_video
from d2f_plugins._checkout import add_to_path, in_dir

__all__ = ["HaMeROptions", "HaMeRDetector", "crop_to_image"]

UPSTREAM = "https://github.com/geopavlakos/hamer"
INSTALL = (f"git clone --recursive {UPSTREAM}; in it: pip install -e .[all], pip install -v -e third-party/ViTPose, "
           "bash fetch_demo_data.sh, MANO_RIGHT.pkl into _DATA/data/mano; then export HAMER_DIR=/path/to/hamer")
VITDET_URL = ("https://dl.fbaipublicfiles.com/detectron2/ViTDet/COCO/cascade_mask_rcnn_vitdet_h/f328730692/"
              "model_final_f05665.pkl")


class HaMeROptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    checkpoint: str | None = Field(default=None, description=(
        "HaMeR checkpoint; default $HAMER_DIR/_DATA/hamer_ckpts/checkpoints/hamer.ckpt (fetch_demo_data.sh)"))
    detector_weights: str | None = Field(default=None, description=(
        "local ViTDet person-detector weights model_final_f05665.pkl (never downloaded)"))
    hand: Literal["any", "right", "left"] = Field(default="any", description="which hand to report")
    person_threshold: float = Field(default=0.5, ge=0.0, le=1.0, description="person detection score threshold")
    keypoint_threshold: float = Field(default=0.5, ge=0.0, le=1.0, description=(
        "ViTPose hand keypoint confidence threshold (demo: 0.5)"))
    min_hand_keypoints: int = Field(default=4, ge=1, le=21, description=(
        "confident hand keypoints needed for a hand box (demo: more than 3)"))
    rescale_factor: float = Field(default=2.0, gt=0.0, description="hand box padding factor (demo: 2.0)")
    device: str = Field(default="auto", description=DEVICE_HELP)
    dtype: DTypeName = Field(default="auto", description=DTYPE_HELP + "; auto = float32, as HaMeR's demo")

    needs: ClassVar[Needs] = Needs(
        weights=("detector_weights", "checkpoint"), gpu_gb=8.0, disk_gb=6.5,
        source="bash fetch_demo_data.sh in the HaMeR checkout (hamer_ckpts, vitpose_ckpts), MANO_RIGHT.pkl "
               "(https://mano.is.tue.mpg.de) and the ViTDet person detector " + VITDET_URL,
        default_weights=lambda o: {
            "detector_weights": Path(o.detector_weights).expanduser() if o.detector_weights else None,
            "checkpoint": Path(o.checkpoint).expanduser() if o.checkpoint else (
                (_checkout() / "_DATA" / "hamer_ckpts" / "checkpoints" / "hamer.ckpt") if _checkout() else None)})


def _checkout() -> Path | None:
    env = os.environ.get("HAMER_DIR")
    if env and (Path(env).expanduser() / "vitpose_model.py").is_file():
        return Path(env).expanduser().resolve()
    return None


def _present(mod: str) -> bool:
    if mod in sys.modules:
        return True
    try:
        return importlib.util.find_spec(mod) is not None
    except (ImportError, ValueError):
        return False


def _available() -> str | None:
    root = _checkout()
    if root is None:
        if os.environ.get("HAMER_DIR"):
            return f"HAMER_DIR={os.environ['HAMER_DIR']} is not a HaMeR checkout (no vitpose_model.py); {INSTALL}"
        return f"needs HaMeR (not installed; set HAMER_DIR): pip install 'dream2flow[hamer]'; then {INSTALL}"
    missing = [m for m in ("detectron2",) if not _present(m)]
    if not _present("hamer") and not (root / "hamer" / "__init__.py").is_file():
        missing.insert(0, "hamer")
    if missing:
        return f"needs {', '.join(missing)} (not installed): {INSTALL}"
    return None


@contextlib.contextmanager
def _cuda_is_noop(active: bool) -> Iterator[None]:
    """While building the detector on a CPU device, ``Module.cuda()`` leaves modules where they are."""
    if not active:
        yield
        return
    import torch

    original = torch.nn.Module.cuda
    torch.nn.Module.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    try:
        yield
    finally:
        torch.nn.Module.cuda = original  # type: ignore[method-assign]


def crop_to_image(kp: np.ndarray, box_center: np.ndarray, box_size: float, right: bool) -> np.ndarray:
    """HaMeR's ``pred_keypoints_2d`` (21 x 2, crop pixel / crop size - 0.5) -> image pixels."""
    k = np.array(kp, dtype=np.float64)
    if not right:
        k[:, 0] = -k[:, 0]  # the crop of a left hand is mirrored
    return (np.asarray(box_center, np.float64)[None] + float(box_size) * k).astype(np.float32)


def _np(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


class HaMeRDetector:
    """Thumb tip (and 20 more keypoints) per frame from HaMeR's demo pipeline."""

    name = "hamer"
    kind = "hand"
    capabilities = frozenset({"needs_weights", "deterministic", "model_input"})
    Options = HaMeROptions
    extra, requires, install = "hamer", ("torch",), INSTALL
    available = staticmethod(_available)
    description = "HaMeR hand keypoints (ViTDet + ViTPose boxes, demo pipeline); thumb tip = 4"
    verified = ("stand-in of the documented HaMeR demo API (tests/standins/hamer): hand checks; thumb tip "
                "of a rendered right and mirrored left hand within 2 px, BGR/RGB edges")
    model_input_spec = ModelInputSpec(channel_order="BGR", value_range=(0.0, 255.0), layout="HWC")

    def __init__(self, detector: Any, pose: Any, model: Any, model_cfg: Any, dataset_cls: Any,
                 options: HaMeROptions | None = None, root: Path | None = None, to_device: Any = None) -> None:
        self.options = options or HaMeROptions()
        self.detector, self.pose, self.model, self.model_cfg = detector, pose, model, model_cfg
        self.dataset_cls = dataset_cls
        self.root = root
        self.to_device = to_device
        self.device = choose(self.options.device, self.options.dtype, component="hand hamer",
                             cuda_dtype=HaMeROptions.needs.cuda_dtype)

    def model_input(self, image: np.ndarray) -> np.ndarray:
        """The frame detectron2 and HaMeR's crops receive: uint8 H x W x 3 **BGR** (cv2 order)."""
        from d2f_core.validate import check_image

        return np.ascontiguousarray(np.array(check_image(image, "image"), dtype=np.uint8)[:, :, ::-1])

    def _hand_box(self, rgb: np.ndarray, bgr: np.ndarray) -> tuple[np.ndarray, bool] | None:
        o = self.options
        inst = self.detector(bgr)["instances"]
        classes, scores = _np(inst.pred_classes), _np(inst.scores)
        keep = (classes == 0) & (scores > o.person_threshold)
        boxes = _np(inst.pred_boxes.tensor)[keep]
        if len(boxes) == 0:
            return None
        people = self.pose.predict_pose(rgb, [np.concatenate([boxes, scores[keep][:, None]], axis=1)])
        best: tuple[float, np.ndarray, bool] | None = None
        for person in people:
            kps = np.asarray(person["keypoints"])
            for right, rows in ((False, kps[-42:-21]), (True, kps[-21:])):
                if (o.hand == "right" and not right) or (o.hand == "left" and right):
                    continue
                ok = rows[:, 2] > o.keypoint_threshold
                if ok.sum() < o.min_hand_keypoints:
                    continue
                box = np.array([rows[ok, 0].min(), rows[ok, 1].min(), rows[ok, 0].max(), rows[ok, 1].max()])
                conf = float(rows[ok, 2].mean())
                if best is None or conf > best[0]:
                    best = (conf, box, right)
        return None if best is None else (best[1], best[2])

    def _keypoints(self, bgr: np.ndarray, box: np.ndarray, right: bool) -> np.ndarray:
        import torch
        from torch.utils.data import default_collate

        ds = self.dataset_cls(self.model_cfg, bgr, box[None].astype(np.float32), np.array([1.0 if right else 0.0]),
                              rescale_factor=self.options.rescale_factor)
        batch = default_collate([ds[0]])
        if self.to_device is not None:
            batch = self.to_device(batch, self.device.device)
        with torch.no_grad(), autocast(self.device):
            out = self.model(batch)
        kp = _np(out["pred_keypoints_2d"])[0]
        center = _np(batch["box_center"])[0]
        size = float(_np(batch["box_size"]).reshape(-1)[0])
        right_flag = bool(_np(batch["right"]).reshape(-1)[0] > 0.5)
        return crop_to_image(kp, center, size, right_flag)

    def detect(self, video: Video) -> HandTrack:
        check_video(video, "video")
        T = video.num_frames
        kp = np.full((T, 21, 2), np.nan, np.float32)
        present = np.zeros(T, bool)
        for t in range(T):
            rgb = np.array(video.frames[t], dtype=np.uint8)
            bgr = self.model_input(rgb)
            found = self._hand_box(rgb, bgr)
            if found is None:
                continue
            pts = self._keypoints(bgr, *found)
            if pts.shape == (21, 2) and np.all(np.isfinite(pts)):
                kp[t], present[t] = pts, True
        return HandTrack(keypoints=kp, present=present)


def _file(path: Path, field: str, what: str) -> Path:
    if not path.is_file():
        raise PluginUnavailableError(f"hand plugin 'hamer' needs {what}: {path} not found ({field})")
    return path


def _factory(options: HaMeROptions | None, ctx: Any = None) -> HaMeRDetector:
    options = options or HaMeROptions()
    root = _checkout()
    if root is None:
        raise PluginUnavailableError(f"hand plugin 'hamer' needs HaMeR: {INSTALL}")
    if not options.detector_weights:
        raise PluginUnavailableError(f"hand plugin 'hamer' needs weights: set hand.options.detector_weights to a local "
                                     f"copy of the ViTDet person detector ({VITDET_URL})")
    det_w = Path(options.detector_weights).expanduser().resolve()
    if not det_w.is_file():
        raise DataError(f"hand.options.detector_weights: {det_w} not found; download {VITDET_URL} once")
    ckpt = (Path(options.checkpoint).expanduser().resolve() if options.checkpoint
            else root / "_DATA" / "hamer_ckpts" / "checkpoints" / "hamer.ckpt")
    _file(ckpt, "hand.options.checkpoint", f"the HaMeR checkpoint (bash fetch_demo_data.sh in {root})")
    _file(root / "_DATA" / "data" / "mano" / "MANO_RIGHT.pkl", "MANO",
          "the MANO right-hand model (licence: https://mano.is.tue.mpg.de)")
    _file(root / "_DATA" / "vitpose_ckpts" / "vitpose+_huge" / "wholebody.pth", "ViTPose",
          f"the ViTPose weights (bash fetch_demo_data.sh in {root})")
    add_to_path(root)
    try:
        import torch
        from detectron2.config import LazyConfig
        import hamer
        from hamer.datasets.vitdet_dataset import ViTDetDataset
        from hamer.models import load_hamer
        from hamer.utils import recursive_to
        from hamer.utils.utils_detectron2 import DefaultPredictor_Lazy
        vitpose_model = importlib.import_module("vitpose_model")
    except ImportError as e:
        raise PluginUnavailableError(f"hand plugin 'hamer' cannot import its pipeline ({e}); {INSTALL}") from None
    device = torch.device(choose(options.device, options.dtype, component="hand hamer",
                             cuda_dtype=HaMeROptions.needs.cuda_dtype).device)
    with in_dir(root):
        model, model_cfg = load_hamer(str(ckpt))
        model = model.to(device)
        model.eval()
        cfg = LazyConfig.load(str(Path(hamer.__file__).parent / "configs" / "cascade_mask_rcnn_vitdet_h_75ep.py"))
        cfg.train.init_checkpoint = str(det_w)
        for i in range(3):
            cfg.model.roi_heads.box_predictors[i].test_score_thresh = 0.25
        with _cuda_is_noop(device.type != "cuda"):  # HaMeR's DefaultPredictor_Lazy calls .cuda() itself
            detector = DefaultPredictor_Lazy(cfg)
        pose = vitpose_model.ViTPoseModel(device)
    return HaMeRDetector(detector, pose, model, model_cfg, ViTDetDataset, options, root, recursive_to)


@hookimpl
def d2f_register(register):
    register(Manifest.of(HaMeRDetector, factory=_factory))
