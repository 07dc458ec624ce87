"""``wan2.1`` video model: Wan 2.1 image-to-video with diffusers' ``WanImageToVideoPipeline``.

Weights come from a local folder in the diffusers layout (``options.weights``), never from the
network: ``Wan-AI/Wan2.1-I2V-14B-480P-Diffusers`` (image-to-video) or
``Wan-AI/Wan2.1-FLF2V-14B-720P-Diffusers`` (first-last-frame, for ``last_image``), downloaded on
a machine with internet access, e.g. ``huggingface-cli download Wan-AI/Wan2.1-I2V-14B-480P-Diffusers
--local-dir DIR``. :mod:`d2f_plugins.video.wan_tiny` builds a tiny random-weight folder of the
same layout for tests.

What the adapter does at its edge:

* prompt: used as given. The core builds it from ``flow.prompt_template``, whose default is the
  paper's ``"{task} by one hand. The camera holds a still pose, not zooming in or out."``
  (override it there).
* frames: ``num_frames`` is snapped to the nearest count of the form 4k + 1 (k >= 1) the Wan VAE
  needs (49 stays 49; 2 becomes 5); ``Video.model`` says when it was changed.
* resolution: the model runs at a size that is a multiple of 16 (VAE scale 8 x patch 2) with the
  image's aspect ratio and about ``max_area`` pixels (480 x 832 by default, as the diffusers
  example does), or at ``height`` x ``width`` when both are given. The image is resized to it
  per axis (``model_input``) and the generated frames are resized back per axis to the image's
  size, so pixel (u, v) of every frame is pixel (u, v) of the camera image (the aspect ratio
  changes by at most one 16-pixel step on the way and is restored exactly).
* end frame: with FLF2V weights (``transformer.config.pos_embed_seq_len`` set) ``last_image``
  goes to the pipeline's ``last_image``. Without ``last_image`` an FLF2V model gets the first
  frame as both CLIP image contexts (it needs two) and only the first frame as the video
  condition; ``Video.model`` says so. This is done by the pipeline subclass the adapter loads
  (:class:`_WanPipeline`, whose ``encode_image`` doubles a lone image when asked), not by patching
  the loaded pipeline. I2V weights refuse ``last_image`` with a ValueError.
* output: diffusers returns floats 0-1 (``output_type="np"``); frames become uint8 RGB.
* seed: a CPU ``torch.Generator`` seeded with ``seed`` (random when None; the seed used is
  recorded in ``Video.seed``), so the same seed gives the same frames on the same device.

Devices and memory (:mod:`d2f_core.devices`): ``device: auto`` runs on CUDA when available,
``dtype: auto`` loads the transformer and text encoder in bfloat16 on CUDA (float16 on GPUs
without bf16) with the VAE and CLIP image encoder in float32, as the diffusers example does,
and everything in float32 on the CPU. The dtype keyword is the one the installed diffusers'
``from_pretrained`` documents (``dtype`` since it renamed ``torch_dtype``), and the loaded
components' dtypes are checked afterwards. For GPUs with less memory than the 14B model needs
(about 40 GB in bf16 for the transformer, UMT5 text encoder and CLIP together), ``cpu_offload:
model`` (diffusers' ``enable_model_cpu_offload``: one model on the GPU at a time, the 28 GB
transformer being the peak) or ``sequential`` (``enable_sequential_cpu_offload``: layer by
layer, slow, a few GB) and ``vae_tiling: true`` (decode in tiles) lower the peak.
"""

from __future__ import annotations

import json
import math
import re
import secrets
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from d2f_core import Manifest, ModelInputSpec, Video, hookimpl
from d2f_core.devices import DEVICE_HELP, DTypeName, Needs, choose
from d2f_core.registry import PluginError, PluginUnavailableError
from d2f_core.validate import check_image

from ._adapter_util import check_generate_inputs, resize_frames

__all__ = ["WanOptions", "WanVideoModel", "snap_num_frames", "model_resolution", "WEIGHTS_HELP"]

I2V_REPO = "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers"
FLF2V_REPO = "Wan-AI/Wan2.1-FLF2V-14B-720P-Diffusers"
WEIGHTS_HELP = (f"download {I2V_REPO} (or {FLF2V_REPO} for end-frame conditioning) on a machine with "
                f"internet access, e.g. `huggingface-cli download {I2V_REPO} --local-dir DIR`, and set "
                "video.options.weights=DIR; the adapter never downloads weights")
DEFAULT_NEGATIVE_PROMPT = (
    "Bright tones, overexposed, static, blurred details, subtitles, style, works, paintings, images, static, "
    "overall gray, worst quality, low quality, JPEG compression residue, ugly, incomplete, extra fingers, poorly "
    "drawn hands, poorly drawn faces, deformed, disfigured, misshapen limbs, fused fingers, still picture, messy "
    "background, three legs, many people in the background, walking backwards")
"""The negative prompt of diffusers' Wan 2.1 example (an English rendering of Wan's default)."""


class WanOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    weights: str | None = Field(None, description=f"local folder of a diffusers Wan 2.1 image-to-video release "
                                                  f"({I2V_REPO}; {FLF2V_REPO} for last_image)")
    num_inference_steps: int = Field(50, ge=1, description="denoising steps")
    guidance_scale: float = Field(5.0, ge=0.0, description="classifier-free guidance scale (<= 1 disables it)")
    negative_prompt: str = Field(DEFAULT_NEGATIVE_PROMPT, description="what the video must not show")
    max_area: int = Field(480 * 832, ge=256, description="pixels of the model resolution (height x width), "
                                                          "chosen with the image's aspect ratio")
    height: int | None = Field(None, ge=16, description="model resolution height, pixels (with width; "
                                                         "overrides max_area; snapped down to a multiple of 16)")
    width: int | None = Field(None, ge=16, description="model resolution width, pixels (with height)")
    fps: float = Field(16.0, gt=0, description="frame rate of the generated video, Hz (Wan 2.1: 16)")
    dtype: DTypeName = Field(
        "auto", description="weights' dtype; auto = bfloat16 on CUDA (float16 without bf16 support), float32 on "
                            "the CPU (VAE and image encoder stay float32)")
    device: str = Field("auto", description=DEVICE_HELP)
    cpu_offload: bool | Literal["model", "sequential"] = Field(
        False, description="diffusers' CPU offload for GPUs with little memory: model (or true) = "
                           "enable_model_cpu_offload, one model on the GPU at a time; sequential = "
                           "enable_sequential_cpu_offload, layer by layer (slowest, least memory)")
    vae_tiling: bool = Field(False, description="decode the video latents in tiles (the VAE's enable_tiling): "
                                                "less GPU memory at the decode")
    max_sequence_length: int = Field(512, ge=8, description="prompt tokens (longer prompts are truncated)")

    needs: ClassVar[Needs] = Needs(
        weights=("weights",), cuda_dtype="bfloat16", gpu_gb=40.0, gpu_gb_min=30.0, disk_gb=70.0,
        source=f"https://huggingface.co/{I2V_REPO} (or {FLF2V_REPO})",
        memory_options="cpu_offload: model | sequential, vae_tiling: true")

    @model_validator(mode="after")
    def _both_sizes(self) -> "WanOptions":
        if (self.height is None) != (self.width is None):
            raise ValueError("height and width go together: give both (model resolution) or neither "
                             "(max_area picks it)")
        return self


def snap_num_frames(n: int, temporal: int = 4) -> int:
    """The frame count of the form ``temporal * k + 1`` (k >= 1) nearest to ``n`` (ties go up)."""
    k = max(1, int(math.floor((n - 1) / temporal + 0.5)))
    return temporal * k + 1


def model_resolution(height: int, width: int, *, multiple: int = 16, max_area: int = 480 * 832,
                     fixed: tuple[int, int] | None = None) -> tuple[int, int]:
    """(height, width) the model runs at for an image of ``height`` x ``width``: multiples of
    ``multiple`` with the image's aspect ratio and about ``max_area`` pixels (as diffusers' Wan
    example computes it), or ``fixed`` snapped down to multiples."""
    if fixed is not None:
        h, w = fixed
    else:
        aspect = height / width
        h, w = round(math.sqrt(max_area * aspect)), round(math.sqrt(max_area / aspect))
    return max(multiple, h // multiple * multiple), max(multiple, w // multiple * multiple)


def _dtype_keyword(from_pretrained: Any) -> str:
    """The dtype keyword the installed diffusers' ``from_pretrained`` documents: ``dtype`` (diffusers
    renamed ``torch_dtype``, which still works with a deprecation warning) or ``torch_dtype``."""
    doc = getattr(from_pretrained, "__doc__", None) or ""
    names = set(re.findall(r"^\s*(dtype|torch_dtype) \(", doc, re.M))
    return "dtype" if "dtype" in names else "torch_dtype"


def _pipeline_class() -> Any:
    """``WanImageToVideoPipeline`` with an ``encode_image`` that can give a lone image twice (FLF2V
    weights without an end frame need two CLIP contexts)."""
    from diffusers import WanImageToVideoPipeline

    class _WanPipeline(WanImageToVideoPipeline):
        _d2f_first_frame_twice = False

        def encode_image(self, image, device=None):  # noqa: ANN001 - diffusers' signature
            if self._d2f_first_frame_twice and not isinstance(image, (list, tuple)):
                image = [image, image]
            return super().encode_image(image, device)

    _WanPipeline.__name__ = _WanPipeline.__qualname__ = "WanImageToVideoPipeline"
    return _WanPipeline


def _weights_error(text: str) -> PluginUnavailableError:
    return PluginUnavailableError(f"video plugin 'wan2.1': {text}; {WEIGHTS_HELP}")


def _check_weights(weights: str | None) -> Path:
    if not weights:
        raise _weights_error("video.options.weights is not set")
    p = Path(weights).expanduser()
    if not p.is_dir():
        raise _weights_error(f"video.options.weights: folder {p} does not exist")
    index = p / "model_index.json"
    if not index.is_file():
        raise _weights_error(f"video.options.weights: {p} has no model_index.json (not a diffusers pipeline "
                             "folder)")
    try:
        cls = json.loads(index.read_text()).get("_class_name")
    except (OSError, ValueError) as e:
        raise _weights_error(f"video.options.weights: cannot read {index} ({e})") from None
    if cls != "WanImageToVideoPipeline":
        raise _weights_error(f"video.options.weights: {p} holds a {cls} pipeline, not a Wan 2.1 "
                             "image-to-video one (WanImageToVideoPipeline)")
    return p


class WanVideoModel:
    """Wan 2.1 image-to-video (FLF2V weights: also first-last-frame) on a local diffusers folder."""

    name = "wan2.1"
    kind = "video"
    capabilities = frozenset({"needs_weights", "deterministic", "model_input", "end_frame_conditioning"})
    """Declared by the plugin; an instance on I2V weights drops ``end_frame_conditioning``."""
    Options = WanOptions
    extra = "wan"
    requires = ("torch", "diffusers", "transformers", "accelerate", "ftfy", "PIL")
    description = "Wan 2.1 image-to-video (first-last-frame with FLF2V weights), diffusers, local weights"
    verified = "tiny random-weight pipeline (I2V and FLF2V) saved and reloaded with from_pretrained"
    model_input_spec = ModelInputSpec(channel_order="RGB", value_range=(0.0, 255.0), layout="HWC")

    def __init__(self, options: WanOptions) -> None:
        self.options = o = options
        self.weights = _check_weights(o.weights)
        try:
            import torch
            from diffusers import WanImageToVideoPipeline
        except ImportError as e:
            raise PluginUnavailableError(f"video plugin 'wan2.1' needs {e.name or e} (not installed): "
                                         "pip install 'dream2flow[wan]'") from None
        try:
            import ftfy  # noqa: F401 - diffusers' Wan prompt cleaning calls it
        except ImportError:
            raise PluginUnavailableError("video plugin 'wan2.1' needs ftfy (not installed): "
                                         "pip install 'dream2flow[wan]'") from None
        self._torch = torch
        self.device = choose(o.device, o.dtype, component="video wan2.1", cuda_dtype=WanOptions.needs.cuda_dtype)
        dtype = self.device.torch_dtype()
        torch_dtype: Any = dtype if dtype == torch.float32 else {
            "default": dtype, "vae": torch.float32, "image_encoder": torch.float32}
        cls = _pipeline_class()
        dtype_kw = _dtype_keyword(WanImageToVideoPipeline.from_pretrained)
        try:
            pipe = cls.from_pretrained(str(self.weights), local_files_only=True, **{dtype_kw: torch_dtype})
        except Exception as e:  # noqa: BLE001 - any loading problem is one line
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            raise PluginError(f"video plugin 'wan2.1': cannot load the pipeline from {self.weights} "
                              f"({type(e).__name__}: {first}); check that the folder is a complete "
                              f"download of {I2V_REPO} or {FLF2V_REPO}") from None
        got = {"transformer": pipe.transformer.dtype, "vae": pipe.vae.dtype}
        want = {"transformer": dtype, "vae": torch.float32}
        wrong = {k: v for k, v in got.items() if v != want[k]}
        if wrong:
            raise PluginError(f"video plugin 'wan2.1': loaded with {dtype_kw}= but got "
                              + ", ".join(f"{k} {v} (asked {want[k]})" for k, v in wrong.items())
                              + "; this diffusers version does not take per-component dtypes: pip install -U "
                                "'diffusers>=0.33'")
        pipe.set_progress_bar_config(disable=True)
        offload = "model" if o.cpu_offload is True else (o.cpu_offload or None)
        if offload and not self.device.is_cuda:
            raise PluginError(f"video plugin 'wan2.1': cpu_offload={o.cpu_offload!r} moves models to a GPU while "
                              f"they run, but the device is {self.device.device}; drop cpu_offload or use CUDA")
        if offload == "model":
            pipe.enable_model_cpu_offload(device=self.device.device)
        elif offload == "sequential":
            pipe.enable_sequential_cpu_offload(device=self.device.device)
        else:
            pipe.to(self.device.device)
        if o.vae_tiling:
            pipe.vae.enable_tiling()
        self.offload = offload
        self.pipe = pipe
        tcfg = pipe.transformer.config
        self.flf2v = getattr(tcfg, "pos_embed_seq_len", None) is not None
        self.variant = "FLF2V" if self.flf2v else "I2V"
        if not self.flf2v:
            self.capabilities = frozenset(self.capabilities - {"end_frame_conditioning"})
        self.multiple = math.lcm(int(pipe.vae_scale_factor_spatial) * int(tcfg.patch_size[1]), 16)
        self.temporal = int(pipe.vae_scale_factor_temporal)

    # -- conversions
    def resolution(self, height: int, width: int) -> tuple[int, int]:
        o = self.options
        fixed = (o.height, o.width) if o.height is not None and o.width is not None else None
        return model_resolution(height, width, multiple=self.multiple, max_area=o.max_area, fixed=fixed)

    def model_input(self, image: np.ndarray) -> np.ndarray:
        """The RGB uint8 H x W x 3 image the pipeline receives (as a PIL image): ``image`` resized
        per axis to the model resolution."""
        check_image(image, "image")
        H, W = self.resolution(*image.shape[:2])
        return resize_frames(np.asarray(image)[None], H, W)[0]

    def generate(self, image: np.ndarray, prompt: str, *, last_image: np.ndarray | None = None,
                 num_frames: int = 49, seed: int | None = None) -> Video:
        n_req = check_generate_inputs(image, prompt, last_image, num_frames)
        if last_image is not None and not self.flf2v:
            raise ValueError(f"last_image: the Wan weights at {self.weights} are image-to-video (I2V) only; "
                             f"end-frame conditioning needs first-last-frame weights ({FLF2V_REPO})")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise ValueError(f"seed: expected an integer or None, got {seed!r}")
        from PIL import Image
        torch, o = self._torch, self.options
        n = snap_num_frames(n_req, self.temporal)
        H0, W0 = image.shape[:2]
        H, W = self.resolution(H0, W0)
        first = Image.fromarray(self.model_input(image))
        last = Image.fromarray(self.model_input(last_image)) if last_image is not None else None
        used_seed = int(seed) if seed is not None else secrets.randbits(63)
        generator = torch.Generator(device="cpu").manual_seed(used_seed)
        kw: dict[str, Any] = dict(image=first, prompt=prompt, negative_prompt=o.negative_prompt or None,
                                  height=H, width=W, num_frames=n, num_inference_steps=o.num_inference_steps,
                                  guidance_scale=o.guidance_scale, generator=generator, output_type="np",
                                  max_sequence_length=o.max_sequence_length)
        if last is not None:
            kw["last_image"] = last
        duplicate_context = self.flf2v and last is None  # FLF2V's image embedding expects two CLIP contexts
        self.pipe._d2f_first_frame_twice = duplicate_context
        try:
            with torch.inference_mode():
                out = self.pipe(**kw)
        finally:
            self.pipe._d2f_first_frame_twice = False
        frames = np.asarray(out.frames[0], dtype=np.float32)
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise PluginError(f"video plugin 'wan2.1': the pipeline returned frames of shape {frames.shape}, "
                              "expected T x H x W x 3")
        frames = np.clip(np.round(frames * 255.0), 0, 255).astype(np.uint8)
        frames = resize_frames(frames, H0, W0)
        notes = [self.variant]
        if n != n_req:
            notes.append(f"frames snapped to 4k+1: asked {n_req}, made {n}")
        if duplicate_context:
            notes.append("no end frame: first frame used as both CLIP contexts")
        notes.append(f"generated at {W}x{H}" + (f", resized to {W0}x{H0}" if (H, W) != (H0, W0) else ""))
        return Video(frames=frames, fps=o.fps, model=f"wan2.1:{self.weights.name} ({'; '.join(notes)})",
                     prompt=prompt, seed=used_seed)


@hookimpl
def d2f_register(register):
    register(Manifest.of(WanVideoModel))
