"""``grounded-sam2`` segmenter: Grounding DINO (transformers) finds the object, SAM 2 masks it.

Install::

    SAM2_BUILD_CUDA=0 pip install 'dream2flow[sam2]'   # SAM2_BUILD_CUDA=0 on machines without CUDA

Weights (local, never downloaded):

* ``detector``: a local folder with a transformers Grounding DINO model and its processor (e.g.
  ``huggingface-cli download IDEA-Research/grounding-dino-tiny --local-dir DIR``), or a hub id
  already in the local Hugging Face cache (loaded with ``local_files_only=True``).
* ``sam2_checkpoint``: a SAM 2 checkpoint (e.g. ``sam2.1_hiera_large.pt`` from
  https://github.com/facebookresearch/sam2#download-checkpoints) matching ``sam2_config`` (one of
  the configs shipped inside the ``sam2`` package, e.g. ``configs/sam2.1/sam2.1_hiera_l.yaml``).

Pipeline (as Grounded-SAM-2's ``grounded_sam2_hf_model_demo.py``): the text is lower-cased and
ends with "." (Grounding DINO's prompt format); ``AutoProcessor`` + ``AutoModelForZeroShotObjectDetection``
detect boxes, kept above ``box_threshold`` (0.4) and ``text_threshold`` (0.3) as the release;
the best-scoring box (image pixels, x0 y0 x1 y1) prompts ``SAM2ImagePredictor.predict`` with
``multimask_output=False``. Point prompts (x, y pixels; label 1 include, 0 exclude: the
movable-part re-prompt) go to SAM 2 as ``point_coords``/``point_labels`` together with the box
(``points_with_box``). When Grounding DINO finds no box: with a positive point prompt SAM 2 is
prompted with the points alone (best of its three masks); otherwise ``segment`` raises a
``DataError`` "no '<object>' found".

Conventions at this adapter's edge: both models receive the image as uint8 H x W x 3 RGB (their own
processors resize and normalise it): ``model_input`` returns exactly that array (RGB, 0-255,
``HWC``); a cv2-style BGR image would be a mistake the conformance check
``model_input_convention`` catches. The image embedding of the last image is cached, so the
movable-part re-prompt on the same image does not run SAM 2's encoder again.

Devices (:mod:`d2f_core.devices`): ``device: auto`` = CUDA when available; ``dtype: auto`` runs
both models under bfloat16 autocast on CUDA, as Grounded-SAM-2's demos do (float16 on GPUs
without bf16), and float32 on the CPU. Weights stay float32.
"""

from __future__ import annotations

import hashlib
import inspect
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from d2f_core import DataError, Manifest, ModelInputSpec, hookimpl
from d2f_core.devices import DEVICE_HELP, DTYPE_HELP, DTypeName, Needs, autocast, choose
from d2f_core.registry import PluginUnavailableError
from d2f_core.validate import check_image

__all__ = ["GroundedSAM2Options", "GroundedSAM2Segmenter", "grounding_prompt", "build_tiny_models"]

SAM2_CKPTS = "https://github.com/facebookresearch/sam2#download-checkpoints"


class GroundedSAM2Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    detector: str | None = Field(default=None, description=(
        "Grounding DINO for transformers: a local folder (model + processor) or a hub id already in the "
        "local Hugging Face cache, e.g. IDEA-Research/grounding-dino-tiny; never downloaded"))
    sam2_config: str = Field(default="configs/sam2.1/sam2.1_hiera_l.yaml", description=(
        "SAM 2 model config shipped in the sam2 package (configs/sam2.1/sam2.1_hiera_{t,s,b+,l}.yaml)"))
    sam2_checkpoint: str | None = Field(default=None, description=(
        "local SAM 2 checkpoint (.pt) matching sam2_config"))
    sam2_overrides: list[str] = Field(default_factory=list, description=(
        "extra hydra overrides for sam2.build_sam.build_sam2 (hydra_overrides_extra), e.g. a smaller test "
        "architecture"))
    box_threshold: float = Field(default=0.4, ge=0.0, le=1.0, description=(
        "Grounding DINO box score threshold (the release uses 0.4)"))
    text_threshold: float = Field(default=0.3, ge=0.0, le=1.0, description=(
        "Grounding DINO text-token threshold (the release uses 0.3)"))
    points_with_box: bool = Field(default=True, description=(
        "with point prompts, also give SAM 2 the detected box (False: points only)"))
    device: str = Field(default="auto", description=DEVICE_HELP)
    dtype: DTypeName = Field(default="auto", description=DTYPE_HELP + "; auto = bfloat16 autocast on CUDA, as "
                                                                      "Grounded-SAM-2")

    needs: ClassVar[Needs] = Needs(
        weights=("detector", "sam2_checkpoint"), cuda_dtype="bfloat16", gpu_gb=6.0, gpu_gb_min=3.0, disk_gb=1.6,
        source="https://huggingface.co/IDEA-Research/grounding-dino-tiny (or -base) and "
               "https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_large.pt")


def grounding_prompt(text: str) -> str:
    """Grounding DINO's prompt format: lower case, ending with a period."""
    t = " ".join(text.strip().lower().split())
    return t if t.endswith(".") else t + "."


def _check_prompts(points: Any, labels: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    if points is None and labels is None:
        return None, None
    if points is None:
        raise ValueError("points: labels were given without points; pass points (M x 2 pixels, x y) too")
    if labels is None:
        raise ValueError("labels: points were given without labels; pass labels (M,), 1 = include, 0 = exclude")
    p = np.asarray(points)
    if p.ndim != 2 or p.shape[1] != 2 or p.shape[0] == 0:
        raise ValueError(f"points: expected M x 2 pixels (x, y) with M >= 1, got shape {p.shape}")
    if not np.issubdtype(p.dtype, np.number) or not np.all(np.isfinite(p)):
        raise ValueError("points: must be finite numbers (pixels x, y)")
    lab = np.asarray(labels)
    if lab.ndim != 1 or lab.shape[0] != p.shape[0]:
        raise ValueError(f"labels: expected {p.shape[0]} labels (one per point), got shape {lab.shape}")
    if not np.all(np.isin(lab, (0, 1))):
        raise ValueError(f"labels: must be 1 (include) or 0 (exclude), got {sorted(set(lab.tolist()))}")
    return p.astype(np.float32), lab.astype(np.int32)


class GroundedSAM2Segmenter:
    """Text -> Grounding DINO box -> SAM 2 mask (see the module docstring)."""

    name = "grounded-sam2"
    kind = "segmenter"
    capabilities = frozenset({"needs_weights", "text_prompt", "point_prompts", "deterministic", "model_input"})
    Options = GroundedSAM2Options
    extra, requires = "sam2", ("torch", "torchvision", "transformers", "sam2", "PIL")
    description = "Grounding DINO (transformers) box + SAM 2 mask; point prompts for the movable part"
    verified = ("tiny random-weight Grounding DINO + SAM 2 built here (d2f check); prompts reaching SAM 2 "
                "spied in tests")
    model_input_spec = ModelInputSpec(channel_order="RGB", value_range=(0.0, 255.0), layout="HWC")

    def __init__(self, processor: Any, detector: Any, sam_predictor: Any,
                 options: GroundedSAM2Options | None = None) -> None:
        self.options = options or GroundedSAM2Options()
        self.processor = processor
        self.detector = detector
        self.sam = sam_predictor
        self._image_key: tuple | None = None
        self.device = choose(self.options.device, self.options.dtype, component="segmenter grounded-sam2",
                             cuda_dtype=GroundedSAM2Options.needs.cuda_dtype)
        params = inspect.signature(processor.post_process_grounded_object_detection).parameters
        self._box_kw = "box_threshold" if "box_threshold" in params else "threshold"  # transformers < 4.51 / >=

    def model_input(self, image: np.ndarray) -> np.ndarray:
        """The image both models receive: uint8 H x W x 3 RGB (a copy, never channel-swapped)."""
        return np.array(check_image(image, "image"), dtype=np.uint8)

    def detect(self, image: np.ndarray, text: str) -> tuple[np.ndarray | None, float]:
        """Best Grounding DINO box (x0, y0, x1, y1 pixels of ``image``) for ``text`` and its score."""
        import torch
        from PIL import Image

        rgb = self.model_input(image)
        H, W = rgb.shape[:2]
        inputs = self.processor(images=Image.fromarray(rgb), text=grounding_prompt(text), return_tensors="pt")
        inputs = inputs.to(self.device.device)
        with torch.no_grad(), autocast(self.device):
            outputs = self.detector(**inputs)
        kw = {self._box_kw: self.options.box_threshold, "text_threshold": self.options.text_threshold}
        res = self.processor.post_process_grounded_object_detection(
            outputs, inputs["input_ids"], target_sizes=[(H, W)], **kw)[0]
        scores = res["scores"].detach().float().cpu().numpy()
        if scores.size == 0:
            return None, 0.0
        i = int(np.argmax(scores))
        box = res["boxes"][i].detach().float().cpu().numpy().astype(np.float32)
        box = np.clip(box, [0, 0, 0, 0], [W, H, W, H]).astype(np.float32)
        return box, float(scores[i])

    def _set_image(self, rgb: np.ndarray) -> None:
        key = (rgb.shape, hashlib.sha1(rgb.tobytes()).hexdigest())
        if key != self._image_key:
            self._image_key = None
            self.sam.set_image(rgb)
            self._image_key = key

    def segment(self, image: np.ndarray, text: str, *, points: np.ndarray | None = None,
                labels: np.ndarray | None = None) -> np.ndarray:
        import torch

        rgb = self.model_input(image)
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"text: expected a non-empty string naming the object, got {text!r}")
        pts, lab = _check_prompts(points, labels)
        box, _ = self.detect(rgb, text)
        if box is None and (lab is None or not (lab == 1).any()):
            raise DataError(
                f"segmenter 'grounded-sam2': no {text!r} found in the image (no Grounding DINO box above "
                f"box_threshold={self.options.box_threshold} and text_threshold={self.options.text_threshold}); "
                "name the object differently or lower segmenter.options.box_threshold")
        use_box = box is not None and (pts is None or self.options.points_with_box)
        with torch.no_grad(), autocast(self.device):
            self._set_image(rgb)
            masks, scores, _ = self.sam.predict(
                point_coords=pts, point_labels=lab, box=box if use_box else None,
                multimask_output=not use_box)
        masks, scores = np.asarray(masks), np.asarray(scores).reshape(-1)
        if masks.ndim == 4:  # (boxes, masks, H, W) for batched boxes: we give one box
            masks = masks[0]
        mask = masks[int(np.argmax(scores))] if masks.ndim == 3 else masks
        H, W = rgb.shape[:2]
        if mask.shape != (H, W):
            raise RuntimeError(f"SAM 2 returned a mask of shape {mask.shape} for a {W}x{H} image")
        return np.array(mask > 0.5 if mask.dtype != np.bool_ else mask, dtype=bool)


def _load_detector(spec: str, device: str) -> tuple[Any, Any]:
    from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

    path = Path(spec).expanduser()
    where = str(path) if path.exists() else spec
    if not path.exists() and (spec.startswith((".", "/", "~")) or spec.count("/") > 1):
        raise DataError(f"segmenter.options.detector: folder {path} not found; give a local Grounding DINO "
                        "folder (huggingface-cli download IDEA-Research/grounding-dino-tiny --local-dir DIR)")
    try:
        processor = AutoProcessor.from_pretrained(where, local_files_only=True)
        model = AutoModelForZeroShotObjectDetection.from_pretrained(where, local_files_only=True)
    except OSError as e:
        raise PluginUnavailableError(
            f"segmenter plugin 'grounded-sam2': Grounding DINO {spec!r} is not available locally "
            f"({str(e).splitlines()[0]}); set segmenter.options.detector to a local folder "
            "(huggingface-cli download IDEA-Research/grounding-dino-tiny --local-dir DIR); nothing is downloaded"
        ) from None
    return processor, model.to(device).eval()


def _load_sam2(options: GroundedSAM2Options, device: str) -> Any:
    from sam2.build_sam import build_sam2
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    ckpt = Path(options.sam2_checkpoint).expanduser()
    if not ckpt.is_file():
        raise DataError(f"segmenter.options.sam2_checkpoint: {ckpt} not found; download a SAM 2 checkpoint "
                        f"({SAM2_CKPTS}) matching sam2_config {options.sam2_config!r}")
    try:
        model = build_sam2(options.sam2_config, str(ckpt), device=device,
                           hydra_overrides_extra=list(options.sam2_overrides))
    except Exception as e:  # hydra MissingConfigException, RuntimeError on mismatched weights
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(f"segmenter.options.sam2_config/sam2_checkpoint: cannot build SAM 2 from "
                        f"{options.sam2_config!r} with {ckpt.name} ({type(e).__name__}: {first}); use a config "
                        "shipped in the sam2 package (configs/sam2.1/sam2.1_hiera_l.yaml, ...) and its "
                        "matching checkpoint") from None
    return SAM2ImagePredictor(model)


def _factory(options: GroundedSAM2Options | None, ctx: Any = None) -> GroundedSAM2Segmenter:
    options = options or GroundedSAM2Options()
    missing = [f for f, v in (("detector", options.detector), ("sam2_checkpoint", options.sam2_checkpoint)) if not v]
    if missing:
        raise PluginUnavailableError(
            "segmenter plugin 'grounded-sam2' needs weights: set "
            + " and ".join(f"segmenter.options.{m}" for m in missing)
            + " (detector: a local Grounding DINO folder, e.g. huggingface-cli download "
              f"IDEA-Research/grounding-dino-tiny --local-dir DIR; sam2_checkpoint: a local SAM 2 .pt, {SAM2_CKPTS})")
    device = choose(options.device, options.dtype, component="segmenter grounded-sam2",
                    cuda_dtype=GroundedSAM2Options.needs.cuda_dtype).device
    processor, detector = _load_detector(options.detector, device)
    sam = _load_sam2(options, device)
    return GroundedSAM2Segmenter(processor, detector, sam, options)


# --------------------------------------------------------------------------- tiny random models (checks, tests)

TINY_SAM2_OVERRIDES = [
    "++model.image_encoder.trunk.embed_dim=8", "++model.image_encoder.trunk.stages=[1,1,2,1]",
    "++model.image_encoder.trunk.global_att_blocks=[3]",
    "++model.image_encoder.neck.backbone_channel_list=[64,32,16,8]",
    "++model.image_encoder.neck.d_model=32", "++model.image_encoder.neck.position_encoding.num_pos_feats=32",
    "++model.memory_attention.d_model=32", "++model.memory_attention.layer.d_model=32",
    "++model.memory_attention.layer.dim_feedforward=64",
    "++model.memory_attention.layer.self_attention.embedding_dim=32",
    "++model.memory_attention.layer.cross_attention.embedding_dim=32",
    "++model.memory_attention.layer.cross_attention.kv_in_dim=16",
    "++model.memory_encoder.out_dim=16", "++model.memory_encoder.mask_downsampler.embed_dim=32",
    "++model.memory_encoder.fuser.layer.dim=32", "++model.memory_encoder.position_encoding.num_pos_feats=16",
]
"""Hydra overrides shrinking ``sam2.1_hiera_t.yaml`` (its 1024-pixel input, feature sizes and heads stay)."""

TINY_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "box", "bread", "bowl", "oven", "door",
              "handle", "drawer", "cup", "the", "a"]


def build_tiny_models(folder: str | Path, seed: int = 0) -> dict[str, Any]:
    """Save a random-weight tiny Grounding DINO (model + processor) and a tiny SAM 2 checkpoint into
    ``folder``; returns the options that load them. Takes about a second on a CPU."""
    import torch
    from sam2.build_sam import build_sam2
    from transformers import (BertConfig, BertTokenizer, GroundingDinoConfig, GroundingDinoForObjectDetection,
                              GroundingDinoImageProcessor, GroundingDinoProcessor, SwinConfig)

    folder = Path(folder)
    det_dir = folder / "grounding-dino-tiny-random"
    det_dir.mkdir(parents=True, exist_ok=True)
    tok = BertTokenizer(vocab={w: i for i, w in enumerate(TINY_VOCAB)}, do_lower_case=True)
    backbone = SwinConfig(image_size=224, patch_size=4, embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1],
                          window_size=7, out_features=["stage2", "stage3", "stage4"])
    text = BertConfig(vocab_size=len(TINY_VOCAB), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=32, max_position_embeddings=64)
    cfg = GroundingDinoConfig(backbone_config=backbone, text_config=text, d_model=32, encoder_layers=1,
                              decoder_layers=2, encoder_ffn_dim=32, decoder_ffn_dim=32, encoder_attention_heads=2,
                              decoder_attention_heads=2, num_queries=10, num_feature_levels=3, max_text_len=32,
                              encoder_n_points=2, decoder_n_points=2)
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        GroundingDinoForObjectDetection(cfg).save_pretrained(det_dir)
        GroundingDinoProcessor(image_processor=GroundingDinoImageProcessor(
            size={"shortest_edge": 64, "longest_edge": 96}), tokenizer=tok).save_pretrained(det_dir)
        torch.manual_seed(seed)
        sam = build_sam2("configs/sam2.1/sam2.1_hiera_t.yaml", None, device="cpu",
                         hydra_overrides_extra=TINY_SAM2_OVERRIDES)
    finally:
        torch.random.set_rng_state(state)
    ckpt = folder / "sam2-tiny-random.pt"
    torch.save({"model": sam.state_dict()}, ckpt)
    return {"detector": str(det_dir), "sam2_config": "configs/sam2.1/sam2.1_hiera_t.yaml",
            "sam2_checkpoint": str(ckpt), "sam2_overrides": list(TINY_SAM2_OVERRIDES)}


@hookimpl
def d2f_register(register):
    register(Manifest.of(GroundedSAM2Segmenter, factory=_factory))
