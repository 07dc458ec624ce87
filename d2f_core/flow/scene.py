"""Scene folders in the official Dream2Flow release's layout: read (``d2f flow extract --scene``)
and write (``d2f world oracle``).

Layout (file names are the contract)::

    camera_rgb.png                 I0, the real first frame (RGB)
    initial_depth.npy | .pt        D0, metres, H x W (0 / NaN = invalid)
    camera_calibration_info.json   {"<camera>": {"intrinsics": 3x3, "extrinsics": 4x4 camera-to-world}}
    scene_data.yaml                instruction: ..., object_name: ... (language_instruction.yaml of
                                   earlier releases is read too)
    rgb.mp4                        optional: the task video (else the configured VideoModel makes it)
    depth_frames.npy | .pt         optional: T x H x W per-frame depth (relative or metric) from any
                                   estimator, aligned to D0 exactly like an estimator's output (the
                                   release ships a torch tensor, depth_frames.pt)
    mask.png                       optional: object mask on frame 0 (else the Segmenter makes it)

Every problem is one :class:`~d2f_core.types.DataError` line naming the file and the fix. Values are
checked, not just shapes: integer D0 (a sensor's millimetres) or a median D0 outside 0.05-20 m is refused
unless the run config gives its unit (``scene_depth_scale: 0.001`` for millimetres); a mask covering every
pixel is refused; a broken link is named as one; array files are size-capped (d2f_core.safeload).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..types import RGBD, Camera, DataError, Video

RGB_FILE = "camera_rgb.png"
DEPTH_FILES = ("initial_depth.npy", "initial_depth.pt")
CALIB_FILE = "camera_calibration_info.json"
DATA_FILE = "scene_data.yaml"
DATA_FILES_OLD = ("language_instruction.yaml",)  # earlier releases: same keys
VIDEO_FILE = "rgb.mp4"
DEPTH_FRAMES_FILE = "depth_frames.npy"
DEPTH_FRAMES_FILES = (DEPTH_FRAMES_FILE, "depth_frames.pt", "depth_frames.npz")  # the release ships .pt
MASK_FILE = "mask.png"
MIN_MASK_PIXELS = 10
"""A mask.png marking fewer object pixels is refused (no flow to speak of can be sampled from it)."""


@dataclass(frozen=True)
class Scene:
    """A loaded scene folder. Optional parts are None when the folder does not have them."""

    path: Path
    rgbd: RGBD
    instruction: str
    object_name: str
    camera_name: str
    video: Video | None = None
    depth_frames: np.ndarray | None = None
    mask: np.ndarray | None = None
    depth_frames_file: str = DEPTH_FRAMES_FILE
    """The file the per-frame depth came from (depth_frames.npy, or the release's .pt)."""

    def fingerprint(self) -> str:
        """Hash of the folder's files (names, sizes, contents) for stage caching."""
        h = hashlib.sha256()
        for p in sorted(self.path.iterdir()):
            if p.is_file():
                h.update(p.name.encode())
                h.update(p.read_bytes())
        h.update(self.camera_name.encode())
        return h.hexdigest()[:16]

    def provided(self) -> dict[str, str]:
        """Component kinds the folder stands in for -> the file."""
        out = {}
        if self.video is not None:
            out["video"] = VIDEO_FILE
        if self.depth_frames is not None:
            out["depth"] = self.depth_frames_file
        if self.mask is not None:
            out["segmenter"] = MASK_FILE
        return out


def _naming(path: Path, e: DataError) -> DataError:
    """The same error, its message starting with the file it is about (unless it names it already)."""
    msg = str(e)
    return DataError(msg if str(path) in msg else f"{path}: {msg}")


def _read_png(path: Path) -> np.ndarray:
    try:
        from PIL import Image
    except ImportError:
        raise DataError(f"reading {path} needs pillow: pip install 'dream2flow[io]'") from None
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except Exception as e:  # noqa: BLE001
        raise DataError(f"{path}: cannot read as a PNG image ({type(e).__name__}: {e}); "
                        "write the first camera frame as an RGB PNG") from None


DEPTH_RANGE_M = (0.05, 20.0)
"""The median valid depth of D0 must fall in this range (metres) unless ``scene_depth_scale`` is set."""


def _read_initial_depth(folder: Path, depth_scale: float | None = None) -> tuple[Path, np.ndarray]:
    from d2f_plugins.depth.file_depth import load_pt  # same distribution; the .pt reader

    from ..safeload import check_array_file

    found = [folder / n for n in DEPTH_FILES if (folder / n).is_file()]
    if not found:
        raise DataError(f"{folder}: missing {DEPTH_FILES[0]} (or {DEPTH_FILES[1]}): the first frame's "
                        "depth in metres, H x W float")
    path = found[0]
    check_array_file(path)
    try:
        d = load_pt(path) if path.suffix == ".pt" else np.load(path, allow_pickle=False)
    except DataError as e:
        raise DataError(f"{path}: {e}") from None
    except Exception as e:  # noqa: BLE001
        raise DataError(f"{path}: not a readable depth array ({type(e).__name__}: {e}); save it with "
                        "np.save(path, depth_in_metres)") from None
    d = np.asarray(d)
    if d.ndim == 3 and d.shape[0] == 1:
        d = d[0]
    if d.ndim != 2 or not np.issubdtype(d.dtype, np.number):
        raise DataError(f"{path}: expected an H x W array of depths in metres, got "
                        f"{d.dtype} with shape {d.shape}")
    fix = ("convert it to metres before saving (e.g. depth_mm / 1000.0), or give its unit with "
           "--set scene_depth_scale=0.001 (millimetres; scene_depth_scale: metres per stored unit)")
    if depth_scale is None and not np.issubdtype(d.dtype, np.floating):
        raise DataError(f"{path}: integer depth ({d.dtype}) looks like a sensor's raw units (millimetres?), "
                        f"not metres; {fix}")
    d = d.astype(np.float32)
    d[~np.isfinite(d) | (d <= 0)] = 0.0
    if depth_scale is not None:
        d = d * np.float32(depth_scale)
    if not (d > 0).any():
        raise DataError(f"{path}: every depth is zero or invalid; it must hold metres (> 0) for "
                        "the object's pixels")
    median = float(np.median(d[d > 0]))
    lo, hi = DEPTH_RANGE_M
    if depth_scale is None and not lo <= median <= hi:
        raise DataError(f"{path}: median depth {median:.4g} is outside {lo}-{hi} m, so it is not metres; {fix}")
    return path, d


def _read_calibration(folder: Path, camera: str | None, width: int, height: int) -> Camera:
    path = folder / CALIB_FILE
    if not path.is_file():
        raise DataError(f"{folder}: missing {CALIB_FILE}: "
                        '{"<camera>": {"intrinsics": 3x3, "extrinsics": 4x4 camera-to-world}}')
    try:
        cam = Camera.from_json(path, camera, width=width, height=height)
    except DataError as e:
        raise _naming(path, e) from None
    K = cam.K
    if abs(np.linalg.det(K)) < 1e-9 or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise DataError(f"{path}: intrinsics of camera {cam.name!r} are not invertible (fx, fy must be "
                        "> 0 pixels): give the 3x3 K [[fx,0,cx],[0,fy,cy],[0,0,1]]")
    return cam


def _read_scene_data(folder: Path) -> tuple[str, str]:
    path = next((folder / n for n in (DATA_FILE,) + DATA_FILES_OLD if (folder / n).is_file()), folder / DATA_FILE)
    if not path.is_file():
        raise DataError(f"{folder}: missing {DATA_FILE} with 'instruction:' and 'object_name:'")
    from ..config import read_yaml
    data = read_yaml(path, DataError) or {}
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a mapping with 'instruction:' and 'object_name:'")
    missing = [k for k in ("instruction", "object_name") if not str(data.get(k) or "").strip()]
    if missing:
        raise DataError(f"{path}: missing {' and '.join(missing)} (e.g. instruction: put the bread "
                        "in the bowl, object_name: bread)")
    return str(data["instruction"]).strip(), str(data["object_name"]).strip()


def _read_video(folder: Path) -> Video | None:
    path = folder / VIDEO_FILE
    if not path.is_file():
        return None
    from d2f_plugins.video.file_video import read_video  # same distribution

    try:
        frames, fps = read_video(path)
    except DataError as e:
        raise _naming(path, e) from None
    if frames.shape[0] < 2:
        raise DataError(f"{path}: the video has {frames.shape[0]} frame; flow needs at least 2 "
                        "(the task done over time): re-export the whole video")
    return Video(frames=frames, fps=fps or 8.0, model=f"scene:{VIDEO_FILE}")


def _read_depth_frames(folder: Path) -> np.ndarray | None:
    path = next((folder / n for n in DEPTH_FRAMES_FILES if (folder / n).is_file()), None)
    if path is None:
        return None
    from d2f_plugins.depth.file_depth import read_depth

    try:
        d = read_depth(path)
    except DataError as e:
        raise _naming(path, e) from None
    if not (d > 0).any():
        raise DataError(f"{path}: every depth is zero or invalid; remove the file to estimate depth "
                        "with the configured depth plugin")
    return d


def _read_mask(folder: Path, shape: tuple[int, int]) -> np.ndarray | None:
    path = folder / MASK_FILE
    if not path.is_file():
        return None
    from d2f_plugins.segment.file_mask import read_mask

    m = read_mask(path)
    if m.shape != shape:
        raise DataError(f"{path}: mask is {m.shape[1]}x{m.shape[0]} but {RGB_FILE} is {shape[1]}x{shape[0]}; "
                        "save the mask at the first frame's size")
    if not m.any():
        raise DataError(f"{path}: the mask is empty (no nonzero pixel); mark the object's pixels or "
                        "remove the file to segment with the configured segmenter")
    if int(m.sum()) < MIN_MASK_PIXELS:
        raise DataError(f"{path}: the mask marks {int(m.sum())} pixel(s); the flow needs at least {MIN_MASK_PIXELS} "
                        "object pixels to sample points from: mark the whole object, or remove the file to segment "
                        "with the configured segmenter")
    if m.all():
        raise DataError(f"{path}: the mask covers every pixel, so it marks no object (and leaves no background "
                        "for the camera-motion check); nonzero must be the object only (check for an inverted "
                        "or blank-white mask), or remove the file to segment with the configured segmenter")
    return m


def load_scene(folder: str | Path, camera: str | None = None, depth_scale: float | None = None) -> Scene:
    """Read and check a scene folder (see the module doc for the layout). ``depth_scale``: metres per
    unit of the initial depth file when it is not stored in metres (config ``scene_depth_scale``)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DataError(f"--scene {folder}: not a folder; give the scene folder holding {RGB_FILE}, "
                        f"{DEPTH_FILES[0]}, {CALIB_FILE} and {DATA_FILE}")
    for name in (RGB_FILE, *DEPTH_FILES, CALIB_FILE, DATA_FILE, *DATA_FILES_OLD, VIDEO_FILE,
                 *DEPTH_FRAMES_FILES, MASK_FILE):
        p = folder / name
        if p.is_symlink() and not p.exists():
            import os
            raise DataError(f"{p}: a broken link (to {os.readlink(p)}, which does not exist); fix the link or "
                            "copy the file into the scene folder")
    rgb_path = folder / RGB_FILE
    if not rgb_path.is_file():
        raise DataError(f"{folder}: missing {RGB_FILE} (the first camera frame, RGB PNG)")
    rgb = _read_png(rgb_path)
    h, w = rgb.shape[:2]
    depth_path, depth = _read_initial_depth(folder, depth_scale)
    if depth.shape != (h, w):
        raise DataError(f"{depth_path}: depth is {depth.shape[1]}x{depth.shape[0]} but {RGB_FILE} is "
                        f"{w}x{h}; save the depth registered to the colour image")
    cam = _read_calibration(folder, camera, w, h)
    instruction, object_name = _read_scene_data(folder)
    video = _read_video(folder)
    depth_frames = _read_depth_frames(folder)
    if depth_frames is not None and video is not None and depth_frames.shape[0] != video.num_frames:
        name = next(n for n in DEPTH_FRAMES_FILES if (folder / n).is_file())
        raise DataError(f"{folder / name}: {depth_frames.shape[0]} depth frames but "
                        f"{VIDEO_FILE} has {video.num_frames} frames; they must match one to one")
    mask = _read_mask(folder, (h, w))
    df_file = next((n for n in DEPTH_FRAMES_FILES if (folder / n).is_file()), DEPTH_FRAMES_FILE)
    return Scene(path=folder, rgbd=RGBD(rgb=rgb, depth=depth, camera=cam), instruction=instruction,
                 object_name=object_name, camera_name=cam.name, video=video, depth_frames=depth_frames,
                 mask=mask, depth_frames_file=df_file)


def write_scene(out_dir: str | Path, rgbd: RGBD, instruction: str, object_name: str, *,
                video: Video | None = None, depth_frames: np.ndarray | None = None,
                mask: np.ndarray | None = None, camera_name: str = "camera") -> Path:
    """Write a scene folder in the official layout (rgb.mp4 needs the io extra). Returns the folder."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    try:
        from PIL import Image
    except ImportError:
        raise DataError("writing a scene folder needs pillow and imageio: pip install 'dream2flow[io]'") from None
    Image.fromarray(np.asarray(rgbd.rgb)).save(out / RGB_FILE)
    np.save(out / DEPTH_FILES[0], np.asarray(rgbd.depth, dtype=np.float32))
    cam = rgbd.camera
    (out / CALIB_FILE).write_text(json.dumps(
        {camera_name: {"intrinsics": cam.K.tolist(), "extrinsics": cam.T_world_cam.tolist(),
                       "width": cam.width, "height": cam.height}}, indent=2))
    (out / DATA_FILE).write_text(yaml.safe_dump({"instruction": instruction, "object_name": object_name},
                                                sort_keys=False))
    if video is not None:
        from d2f_plugins.video.file_video import write_video

        write_video(out / VIDEO_FILE, video.frames, video.fps)
    if depth_frames is not None:
        np.save(out / DEPTH_FRAMES_FILE, np.asarray(depth_frames, dtype=np.float32))
    if mask is not None:
        Image.fromarray((np.asarray(mask, dtype=bool) * 255).astype(np.uint8)).save(out / MASK_FILE)
    return out


def scene_summary(scene: Scene) -> dict[str, Any]:
    return {"path": str(scene.path), "camera": scene.camera_name, "instruction": scene.instruction,
            "object": scene.object_name, "provides": scene.provided()}
