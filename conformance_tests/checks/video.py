"""Checks of video models (d2f_core.protocols.VideoModel)."""

from __future__ import annotations

from typing import Any

import numpy as np

from d2f_core.types import Video

from ..results import CheckFailed
from ..scenes import CheckEnv
from .common import (Check, arrays_equal, blocked_by, cached, call, common_checks, expect_value_error,
                     has_cap, model_input_check, skip_if_cap, Snapshot)

PROMPT = "push the box to the right"
NUM_FRAMES = 5  # on the 4k+1 and 8k+1... grids most video models snap to (5 = 4*1 + 1)
SNAP_TOLERANCE = 8  # frames a model may snap a requested count by (to its own grid)


def _image(env: CheckEnv) -> np.ndarray:
    return np.array(env.scene.video.frames[0], copy=True)


def _last_image(env: CheckEnv) -> np.ndarray:
    return np.array(env.scene.video.frames[-1], copy=True)


def _generate(component: Any, env: CheckEnv, *, num_frames: int = NUM_FRAMES, seed: int | None = 0,
              **kw: Any) -> Any:
    return call(f"generate(image, prompt, num_frames={num_frames}, seed={seed})", component.generate,
                _image(env), PROMPT, num_frames=num_frames, seed=seed, **kw)


def _canonical(component: Any, env: CheckEnv) -> Any:
    return cached(env, component, "video.generate", lambda: _generate(component, env))


def diagnose_frames(frames: Any, where: str) -> str | None:
    """What is wrong with would-be video frames (None when they are uint8 T x H x W x 3)."""
    if not isinstance(frames, np.ndarray):
        try:
            frames = np.asarray(frames)
        except Exception:  # noqa: BLE001
            return f"{where} is {type(frames).__name__}, not an array"
    if np.issubdtype(frames.dtype, np.floating):
        hi = float(np.nanmax(frames)) if frames.size else 0.0
        if hi <= 1.0:
            return (f"{where} are {frames.dtype} in range 0-1: multiply by 255 and convert to uint8 "
                    "(np.clip(np.round(x * 255), 0, 255).astype(np.uint8))")
        return f"{where} are {frames.dtype}: convert with np.clip(np.round(x), 0, 255).astype(np.uint8)"
    if frames.dtype != np.uint8:
        return f"{where} are {frames.dtype}: convert with np.clip(x, 0, 255).astype(np.uint8)"
    if frames.ndim != 4 or frames.shape[-1] != 3:
        hint = ("; channels-first frames must be moved last (np.moveaxis(x, 1, -1))"
                if frames.ndim == 4 and frames.shape[1] == 3 else "")
        return f"{where} have shape {frames.shape}, expected T x H x W x 3 RGB{hint}"
    return None


def check_video_output_types(component: Any, env: CheckEnv) -> None:
    out = _canonical(component, env)
    if not isinstance(out, Video):
        frames = out if isinstance(out, np.ndarray) else getattr(out, "frames", None)
        problem = diagnose_frames(frames, "frames") if frames is not None else None
        base = f"generate() returned {type(out).__name__}, expected d2f_core.Video"
        if problem:
            raise CheckFailed(f"{base}; {problem}, then return Video(frames=..., fps=..., model=...)")
        raise CheckFailed(f"{base}; wrap uint8 T x H x W x 3 RGB frames: Video(frames=..., fps=..., model=...)")
    problem = diagnose_frames(out.frames, "Video.frames")
    if problem:
        raise CheckFailed(problem)
    if out.num_frames < 2:
        raise CheckFailed(f"Video has {out.num_frames} frame(s); a video needs at least 2")


def check_video_num_frames(component: Any, env: CheckEnv) -> None:
    counts = {}
    for n in (NUM_FRAMES, 9):
        out = _canonical(component, env) if n == NUM_FRAMES else _generate(component, env, num_frames=n)
        if not isinstance(out, Video):
            blocked_by("video_output_types", f"generate() returned {type(out).__name__}, not d2f_core.Video")
        counts[n] = out.num_frames
        if out.num_frames != n:
            if abs(out.num_frames - n) > SNAP_TOLERANCE:
                raise CheckFailed(f"asked for {n} frames, got {out.num_frames}; return num_frames frames "
                                  f"(snapping to the model's own grid, e.g. 4k+1, may change the count by "
                                  f"at most {SNAP_TOLERANCE})")
            if not str(out.model).strip():
                raise CheckFailed(f"asked for {n} frames, got {out.num_frames} with an empty Video.model; "
                                  "when snapping the count to the model's grid say so in Video.model "
                                  "(e.g. 'my-model (frames snapped to 4k+1)')")
    if counts[9] < counts[NUM_FRAMES]:
        raise CheckFailed(f"asking for more frames gave fewer ({counts}); honour num_frames")


def check_video_seed_determinism(component: Any, env: CheckEnv) -> None:
    skip_if_cap(component, "api", "a remote service need not be reproducible")
    a = _canonical(component, env)
    b = _generate(component, env)
    if not (isinstance(a, Video) and isinstance(b, Video)):
        blocked_by("video_output_types", "generate() does not return d2f_core.Video")
    ok, why = arrays_equal(a.frames, b.frames)
    if not ok:
        raise CheckFailed(f"the same image, prompt and seed=0 gave different videos ({why}); seed every "
                          "random source from `seed` (e.g. torch.Generator().manual_seed(seed), "
                          "np.random.default_rng(seed)) and never use global random state")


def check_video_rejects_malformed_input(component: Any, env: CheckEnv) -> None:
    img = _image(env)
    fix = "validate it first with d2f_core.validate.check_image(image, 'image')"
    expect_value_error("generate(image, ...)", component.generate, img.astype(np.float32) / 255.0, PROMPT,
                       num_frames=NUM_FRAMES, seed=0, arg="image", given="a float32 0-1 image", fix=fix)
    expect_value_error("generate(image, ...)", component.generate, np.array(img[..., 0]), PROMPT,
                       num_frames=NUM_FRAMES, seed=0, arg="image", given="a H x W grayscale image", fix=fix)
    expect_value_error("generate(image, ...)", component.generate, img, PROMPT, num_frames=0, seed=0,
                       arg="num_frames", given="num_frames=0",
                       fix="reject num_frames < 2 with ValueError('num_frames: ...')")


def check_video_no_input_mutation(component: Any, env: CheckEnv) -> None:
    img = _image(env)
    kw: dict[str, Any] = {}
    snap_args = {"image": img}
    if has_cap(component, "end_frame_conditioning"):
        kw["last_image"] = _last_image(env)
        snap_args["last_image"] = kw["last_image"]
    snap = Snapshot(**snap_args)
    call("generate(image, prompt, ...)", component.generate, img, PROMPT, num_frames=NUM_FRAMES, seed=0, **kw)
    snap.assert_unchanged("generate()")


def check_video_end_frame_conditioning(component: Any, env: CheckEnv) -> None:
    last = _last_image(env)
    if has_cap(component, "end_frame_conditioning"):
        out = _generate(component, env, last_image=last)
        if not isinstance(out, Video):
            raise CheckFailed(f"generate(..., last_image=...) returned {type(out).__name__}, expected "
                              "d2f_core.Video")
        return
    expect_value_error("generate(..., last_image=...)", component.generate, _image(env), PROMPT,
                       last_image=last, num_frames=NUM_FRAMES, seed=0, arg="last_image",
                       given="last_image although capability 'end_frame_conditioning' is not declared",
                       fix="raise ValueError('last_image: this model cannot condition on an end frame') "
                           "or declare 'end_frame_conditioning' and use it")


def check_video_channel_order(component: Any, env: CheckEnv) -> None:
    """Frame 0 shows the input image: it must not be closer to the image with R and B swapped."""
    skip_if_cap(component, "text_only", "the model ignores the image")
    out = _canonical(component, env)
    if not isinstance(out, Video):
        blocked_by("video_output_types", "generate() does not return d2f_core.Video")
    img = _image(env).astype(np.float64)
    f0 = np.asarray(out.frames[0], np.float64)
    if f0.shape != img.shape:
        ys = np.linspace(0, f0.shape[0] - 1, img.shape[0]).round().astype(int)
        xs = np.linspace(0, f0.shape[1] - 1, img.shape[1]).round().astype(int)
        f0 = f0[ys][:, xs]
    d_rgb = float(np.mean(np.abs(f0 - img)))
    d_bgr = float(np.mean(np.abs(f0 - img[..., ::-1])))
    if d_bgr < 0.5 * d_rgb and d_bgr < 25:
        raise CheckFailed(f"frame 0 matches the input image with red and blue swapped (mean abs "
                          f"difference {d_bgr:.1f} vs {d_rgb:.1f} as RGB): the frames are BGR; convert "
                          "with frames[..., ::-1] (OpenCV/decoders return BGR) before building the Video")


CHECKS: list[Check] = [
    *common_checks("video"),
    Check("video_output_types", "video", check_video_output_types,
          "generate() returns d2f_core.Video with uint8 T x H x W x 3 RGB frames"),
    Check("video_num_frames", "video", check_video_num_frames,
          "returns num_frames frames (or snaps to its grid by a few frames and says so in Video.model)"),
    Check("video_seed_determinism", "video", check_video_seed_determinism,
          "the same image, prompt and seed give identical frames (skipped for 'api')"),
    Check("video_rejects_malformed_input", "video", check_video_rejects_malformed_input,
          "float / grayscale images and num_frames=0 raise ValueError naming the argument"),
    Check("video_no_input_mutation", "video", check_video_no_input_mutation,
          "image and last_image are unchanged after generate()"),
    Check("video_end_frame_conditioning", "video", check_video_end_frame_conditioning,
          "declared: accepts last_image; not declared: last_image raises ValueError"),
    Check("video_channel_order", "video", check_video_channel_order,
          "frame 0 is not the input image with red and blue swapped (skipped for 'text_only')"),
    model_input_check("video"),
]
