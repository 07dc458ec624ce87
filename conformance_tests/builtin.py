"""Conformance settings of the built-in plugins, keyed by ``(kind, name)``.

The options ``d2f check`` builds each plugin with (a dict, or a callable ``(env) -> dict`` that
prepares files in ``env.tmp_dir`` or starts a local stand-in server) and the checks it reports as
skipped, with why. The plugin modules themselves carry none of this. Everything heavy is imported
inside the callables, so importing this table is cheap.

Plugins not listed here are built with their default options. Third-party plugins still passing
the deprecated ``Manifest(check_options=..., check_skip=...)`` are handled through those fields.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .settings import ConformanceSettings

__all__ = ["BUILTIN"]

_SERVICE = {"poll_interval_s": 0.02, "backoff_s": 0.01, "timeout_s": 60.0}
"""Adapter options for a run against a local stand-in: fast polls and retries."""


def _file_video(env: Any) -> dict[str, Any]:
    """Write the conformance scene's video losslessly and play it back."""
    from d2f_plugins.video.file_video import write_video

    path = Path(env.tmp_dir) / "file_video.npz"
    write_video(path, env.scene.video.frames, env.scene.video.fps)
    return {"path": str(path)}


def _file_depth(env: Any) -> dict[str, Any]:
    """Write the conformance scene's true metric depth and read it back."""
    path = Path(env.tmp_dir) / "file_depth.npy"
    np.save(path, np.asarray(env.scene.depth, dtype=np.float32))
    return {"path": str(path), "metric": True}


def _file_mask(env: Any) -> dict[str, Any]:
    """Write the conformance scene's frame-0 box mask as a PNG (a .npy without the io extra)."""
    mask = np.asarray(env.scene.mask, dtype=np.uint8) * 255
    try:
        from PIL import Image
    except ImportError:
        path = Path(env.tmp_dir) / "file_mask.npy"
        np.save(path, mask)
        return {"path": str(path)}
    path = Path(env.tmp_dir) / "file_mask.png"
    Image.fromarray(mask).save(path)
    return {"path": str(path)}


def _wan(env: Any) -> dict[str, Any]:
    """Build the tiny random-weight first-last-frame pipeline into the check's temporary folder
    and run it at the conformance scene's own resolution, cheaply (1 denoising step, no
    classifier-free guidance; the tests cover guidance and negative prompts)."""
    from d2f_plugins.video.wan_tiny import build_tiny_wan

    folder = build_tiny_wan(Path(env.tmp_dir) / "tiny-wan", flf2v=True)
    cam = env.scene.camera
    return {"weights": str(folder), "max_area": int(cam.width * cam.height), "num_inference_steps": 1,
            "guidance_scale": 1.0, "max_sequence_length": 32}


def _veo(env: Any) -> dict[str, Any]:
    """Start a stand-in speaking Veo's protocols (no credits are spent); it accepts the key the
    adapter reads and stops when the check's temporary folder is removed. The checks run the
    default Gemini API mode."""
    from d2f_plugins.video._adapter_util import env_secret
    from d2f_plugins.video.veo import KEY_ENVS

    from .standins.veo import VeoStandIn

    srv = VeoStandIn(env_secret(*KEY_ENVS)[1] or "", watch=env.tmp_dir, max_life_s=600, idle_s=120).start()
    return {"base_url": srv.url, **_SERVICE}


def _kling(env: Any) -> dict[str, Any]:
    """Start a stand-in speaking the Kling protocol (no credits are spent). It verifies tokens made
    from the same keys the adapter reads, and stops when the check's temporary folder is removed
    (or after 10 minutes)."""
    from d2f_plugins.video._adapter_util import env_secret
    from d2f_plugins.video.kling import ACCESS_ENV, SECRET_ENV

    from .standins.kling import KlingStandIn

    srv = KlingStandIn(env_secret(ACCESS_ENV)[1] or "", env_secret(SECRET_ENV)[1] or "",
                       watch=env.tmp_dir, max_life_s=600, idle_s=120).start()
    return {"base_url": srv.url, **_SERVICE}


def _grounded_sam2(env: Any) -> dict[str, Any]:
    """Tiny random models whose detector finds a box on the conformance scene's first frame."""
    from d2f_plugins.segment import grounded_sam2 as gs

    image = np.asarray(env.scene.video.frames[0])
    text = env.scene.task.object
    for seed in range(10):
        opts = gs.build_tiny_models(Path(env.tmp_dir) / f"grounded-sam2-{seed}", seed)
        processor, detector = gs._load_detector(opts["detector"], "cpu")
        seg = gs.GroundedSAM2Segmenter(processor, detector, None, gs.GroundedSAM2Options(**opts))
        if seg.detect(image, text)[0] is not None:
            return opts
    return opts


_SIM_SMALL = {"width": 160, "height": 120}
"""Simulator stand-ins checked without a run's world build a small one of their own."""

BUILTIN: dict[tuple[str, str], ConformanceSettings] = {
    ("video", "file"): ConformanceSettings(options=_file_video),
    ("depth", "file"): ConformanceSettings(options=_file_depth),
    ("segmenter", "file"): ConformanceSettings(options=_file_mask),
    ("video", "wan2.1"): ConformanceSettings(options=_wan),
    ("video", "veo3"): ConformanceSettings(options=_veo),
    ("video", "kling"): ConformanceSettings(options=_kling),
    ("segmenter", "grounded-sam2"): ConformanceSettings(options=_grounded_sam2, skip={
        "segment_point_prompts": (
            "accuracy: a random-weight SAM 2 need not put the positive point inside its mask; the tests "
            "check that points (x, y pixels) and labels 1/0 reach SAM 2's predict unchanged")}),
    ("video", "sim-oracle"): ConformanceSettings(options=_SIM_SMALL),
    ("depth", "sim-depth"): ConformanceSettings(options=_SIM_SMALL),
    ("segmenter", "sim-mask"): ConformanceSettings(options={**_SIM_SMALL, "unknown_text": "task_object"}),
    ("hand", "sim-hand"): ConformanceSettings(options=_SIM_SMALL),
    ("world", "robosuite"): ConformanceSettings(options={"width": 320, "height": 240}),
    # Push-T's seeds S and S+1 share gym-pusht's initial state S // 10 (the paper's 10 states x 10 seeds); the
    # reset checks need seeds that differ
    ("world", "pusht"): ConformanceSettings(options={"seeds_per_state": 1}),
    # learned Push-T models are checked untrained (random weights) for their contract; their accuracy is
    # tests/test_pusht_dynamics.py's and the benchmark's
    ("dynamics", "particle"): ConformanceSettings(options={"allow_untrained": True}),
    ("dynamics", "pose"): ConformanceSettings(options={"allow_untrained": True}),
    ("dynamics", "pymunk"): ConformanceSettings(skip={
        "dynamics_edge_actions": (
            "pymunk simulates the T at the pose fitted to the particles, which needs at least 3 of them: fewer is "
            "a ValueError naming the cause (tests/test_pymunk_dynamics.py); its other edge cases are checked")}),
    ("solver", "replay"): ConformanceSettings(options={"source": "flow"}),
}
"""(kind, name) -> settings of every built-in plugin that needs some."""
