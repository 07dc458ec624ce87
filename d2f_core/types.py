"""Data that flows between dream2flow components.

Units and frames are part of the contract and are stated on every field:

* lengths are **metres**, angles **radians**, times **seconds**;
* images are **RGB uint8, H x W x 3** (never BGR, never 0-1 floats);
* pixel coordinates are ``(x, y)`` = (column, row), origin at the top-left pixel *centre*;
* cameras use OpenCV axes (x right, y down, z forward) and ``T_world_cam`` is the
  **camera-to-world** 4x4 transform (a point ``p_cam`` maps to ``T_world_cam @ [p_cam, 1]``);
* "world" is the robot/world frame the embodiment and the world plugin share.

Every type validates itself on construction and raises :class:`DataError` (a ``ValueError``)
naming the field and the fix, so a plugin that returns the wrong thing fails where it happens.
Only numpy is imported here.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np

__all__ = [
    "DataError",
    "Camera",
    "RGBD",
    "Task",
    "Video",
    "Framing",
    "Alignment",
    "DepthVideo",
    "Tracks2D",
    "HandTrack",
    "ObjectFlow",
    "Grasp",
    "JointTrajectory",
    "Observation",
    "FLOW_FORMAT_VERSION",
]

FLOW_FORMAT_VERSION = 1
"""Version of the ``.npz`` layout written by :meth:`ObjectFlow.save`."""


class DataError(ValueError):
    """A value does not meet a data contract. The message names the field and the fix."""


# --------------------------------------------------------------------------- helpers


def _arr(name: str, value: Any, *, dtype=None, ndim: int | None = None, shape: tuple | None = None,
         finite: bool = False) -> np.ndarray:
    """Check an array field and return it (read-only view). ``shape`` entries may be None."""
    if not isinstance(value, np.ndarray):
        raise DataError(f"{name}: expected a numpy array, got {type(value).__name__}; "
                        f"convert with np.asarray(...) at the plugin's edge")
    if dtype is not None and value.dtype != np.dtype(dtype):
        raise DataError(f"{name}: expected dtype {np.dtype(dtype)}, got {value.dtype}; "
                        f"convert with .astype(np.{np.dtype(dtype).name})")
    if ndim is not None and value.ndim != ndim:
        raise DataError(f"{name}: expected {ndim} dimensions, got shape {value.shape}")
    if shape is not None:
        if value.ndim != len(shape) or any(s is not None and s != v for s, v in zip(shape, value.shape)):
            want = "x".join("?" if s is None else str(s) for s in shape)
            raise DataError(f"{name}: expected shape {want}, got {'x'.join(map(str, value.shape))}")
    if finite and value.size and not np.all(np.isfinite(value)):
        raise DataError(f"{name}: contains NaN or inf; only finite values are allowed here")
    out = value.view()
    out.flags.writeable = False
    return out


def _float(name: str, value: Any, *, positive: bool = False) -> float:
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{name}: expected a number, got {value!r}") from None
    if not math.isfinite(f) or (positive and f <= 0):
        raise DataError(f"{name}: expected a finite{' positive' if positive else ''} number, got {value!r}")
    return f


def check_rgb_frames(name: str, frames: Any, ndim: int) -> np.ndarray:
    """Validate RGB uint8 image(s): ndim 3 (H x W x 3) or 4 (T x H x W x 3)."""
    if not isinstance(frames, np.ndarray):
        raise DataError(f"{name}: expected a numpy uint8 array, got {type(frames).__name__}")
    if frames.dtype != np.uint8:
        hint = ("values look like 0-1 floats: multiply by 255, round and clip before .astype(np.uint8)"
                if np.issubdtype(frames.dtype, np.floating) and frames.size and np.nanmax(frames) <= 1.0
                else "convert with np.clip(x, 0, 255).astype(np.uint8)")
        raise DataError(f"{name}: expected RGB uint8 0-255, got dtype {frames.dtype}; {hint}")
    want = "T x H x W x 3" if ndim == 4 else "H x W x 3"
    if frames.ndim != ndim or frames.shape[-1] != 3:
        raise DataError(f"{name}: expected {want} RGB, got shape {frames.shape}"
                        + ("; channels-first input must be moved last with np.moveaxis" if
                           frames.ndim == ndim and frames.shape[-3 if ndim == 3 else 1] == 3 else ""))
    if frames.shape[-3] < 2 or frames.shape[-2] < 2:
        raise DataError(f"{name}: image of {frames.shape[-2]}x{frames.shape[-3]} pixels is too small")
    return _arr(name, frames)


def _as_matrix(name: str, value: Any, n: int) -> np.ndarray:
    a = np.asarray(value, dtype=np.float64)
    if a.shape != (n, n):
        raise DataError(f"{name}: expected a {n}x{n} matrix, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise DataError(f"{name}: contains NaN or inf")
    return a


# --------------------------------------------------------------------------- camera


@dataclass(frozen=True)
class Camera:
    """A calibrated pinhole camera.

    Fields:
        K: 3x3 intrinsics in pixels (fx, fy on the diagonal, principal point cx, cy).
        T_world_cam: 4x4 **camera-to-world** rigid transform, OpenCV axes
            (x right, y down, z forward), translation in metres.
        width, height: image size in pixels the intrinsics refer to.
        name: free label (e.g. the calibration JSON key).
    """

    K: np.ndarray
    T_world_cam: np.ndarray
    width: int
    height: int
    name: str = "camera"

    def __post_init__(self) -> None:
        K = _as_matrix("Camera.K", self.K, 3)
        if abs(np.linalg.det(K)) < 1e-12 or K[0, 0] <= 0 or K[1, 1] <= 0:
            raise DataError("Camera.K: intrinsics are not invertible (fx and fy must be > 0); "
                            "check the calibration file")
        if not np.allclose(K[2], [0, 0, 1]):
            raise DataError(f"Camera.K: last row must be [0, 0, 1], got {K[2].tolist()}")
        T = _as_matrix("Camera.T_world_cam", self.T_world_cam, 4)
        R = T[:3, :3]
        if not np.allclose(T[3], [0, 0, 0, 1], atol=1e-6):
            raise DataError("Camera.T_world_cam: last row must be [0, 0, 0, 1]")
        if not np.allclose(R @ R.T, np.eye(3), atol=1e-4) or np.linalg.det(R) < 0:
            raise DataError("Camera.T_world_cam: rotation part is not a proper rotation "
                            "(R R^T != I or det < 0); expected a rigid camera-to-world transform")
        w, h = int(self.width), int(self.height)
        if w < 2 or h < 2:
            raise DataError(f"Camera.width/height: got {w}x{h}; both must be >= 2 pixels")
        object.__setattr__(self, "K", _arr("Camera.K", K))
        object.__setattr__(self, "T_world_cam", _arr("Camera.T_world_cam", T))
        object.__setattr__(self, "width", w)
        object.__setattr__(self, "height", h)

    # ---- derived
    @property
    def T_cam_world(self) -> np.ndarray:
        """World-to-camera 4x4 transform (inverse of ``T_world_cam``)."""
        R, t = self.T_world_cam[:3, :3], self.T_world_cam[:3, 3]
        out = np.eye(4)
        out[:3, :3] = R.T
        out[:3, 3] = -R.T @ t
        return out

    @property
    def position(self) -> np.ndarray:
        """Camera centre in the world frame, metres."""
        return np.array(self.T_world_cam[:3, 3])

    # ---- geometry
    def project(self, points_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points (..., 3) in metres -> pixels (..., 2) as (x, y) and camera depth z (...)."""
        p = np.asarray(points_world, dtype=np.float64)
        if p.shape[-1] != 3:
            raise DataError(f"Camera.project: points must be (..., 3), got {p.shape}")
        pc = p @ self.T_cam_world[:3, :3].T + self.T_cam_world[:3, 3]
        z = pc[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = (pc[..., :2] / z[..., None]) * np.diag(self.K)[:2] + self.K[:2, 2]
        return uv, z

    def backproject(self, xy: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """Pixels (..., 2) as (x, y) with camera depth z (...) in metres -> world points (..., 3)."""
        xy = np.asarray(xy, dtype=np.float64)
        z = np.asarray(depth, dtype=np.float64)
        x = (xy[..., 0] - self.K[0, 2]) / self.K[0, 0] * z
        y = (xy[..., 1] - self.K[1, 2]) / self.K[1, 1] * z
        pc = np.stack([x, y, z], axis=-1)
        return pc @ self.T_world_cam[:3, :3].T + self.T_world_cam[:3, 3]

    def resized(self, width: int, height: int) -> "Camera":
        """The same camera for an image scaled to ``width`` x ``height`` (pixel-centre convention)."""
        sx, sy = width / self.width, height / self.height
        K = np.array(self.K, dtype=np.float64)
        K[0, 0] *= sx
        K[0, 2] = (K[0, 2] + 0.5) * sx - 0.5
        K[1, 1] *= sy
        K[1, 2] = (K[1, 2] + 0.5) * sy - 0.5
        return replace(self, K=K, width=width, height=height)

    def cropped(self, x0: int, y0: int, width: int, height: int) -> "Camera":
        """The same camera for the crop whose top-left pixel is (x0, y0)."""
        K = np.array(self.K, dtype=np.float64)
        K[0, 2] -= x0
        K[1, 2] -= y0
        return replace(self, K=K, width=width, height=height)

    # ---- I/O
    @classmethod
    def from_json(cls, source: str | Path | Mapping[str, Any], name: str | None = None, *,
                  width: int | None = None, height: int | None = None) -> "Camera":
        """Read a camera from our JSON or the official Dream2Flow calibration JSON.

        Official layout: ``{"<camera>": {"intrinsics": 3x3, "extrinsics": 4x4 camera-to-world}}``
        (image size absent: pass ``width``/``height``, or it is estimated as 2*(cx, cy) + 1).
        Our layout (:meth:`to_json`): ``{"K", "T_world_cam", "width", "height", "name"}``.
        """
        where = str(source) if not isinstance(source, Mapping) else "calibration"
        if isinstance(source, Mapping):
            data = dict(source)
        else:
            path = Path(source)
            if not path.is_file():
                raise DataError(f"{path}: calibration file not found")
            try:
                data = json.loads(path.read_bytes().decode("utf-8"))
            except UnicodeDecodeError as e:
                raise DataError(f"{path}: not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start}); save "
                                "the calibration as UTF-8 JSON") from None
            except (json.JSONDecodeError, RecursionError) as e:
                raise DataError(f"{path}: not valid JSON ({str(e)[:120]}); expected "
                                '{"<camera>": {"intrinsics": 3x3, "extrinsics": 4x4}}') from None
        if not isinstance(data, Mapping):
            raise DataError(f"{where}: the top level is a JSON {type(data).__name__}, expected an object "
                            '{"<camera>": {"intrinsics": 3x3, "extrinsics": 4x4 camera-to-world}}')
        if "K" in data and "T_world_cam" in data:
            return cls(K=data["K"], T_world_cam=data["T_world_cam"], width=data["width"],
                       height=data["height"], name=data.get("name", name or "camera"))
        cams = {k: v for k, v in data.items() if isinstance(v, Mapping)}
        if not cams:
            raise DataError(f"{where}: no camera entries; expected "
                            '{"<camera>": {"intrinsics": 3x3, "extrinsics": 4x4 camera-to-world}}')
        if name is None:
            if len(cams) > 1:
                raise DataError(f"{where}: holds cameras {sorted(cams)}; choose one by name "
                                "(CLI: --camera NAME)")
            name = next(iter(cams))
        if name not in cams:
            raise DataError(f"{where}: no camera named {name!r}; it holds {sorted(cams)}")
        entry = cams[name]
        for key in ("intrinsics", "extrinsics"):
            if key not in entry:
                raise DataError(f"{where}: camera {name!r} lacks {key!r} "
                                f"(intrinsics 3x3, extrinsics 4x4 camera-to-world)")
        K = _as_matrix(f"{where}: {name}.intrinsics", entry["intrinsics"], 3)
        w = width or entry.get("width") or int(round(2 * K[0, 2] + 1))
        h = height or entry.get("height") or int(round(2 * K[1, 2] + 1))
        return cls(K=K, T_world_cam=_as_matrix(f"{where}: {name}.extrinsics", entry["extrinsics"], 4),
                   width=w, height=h, name=name)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "K": self.K.tolist(), "T_world_cam": self.T_world_cam.tolist(),
                "width": self.width, "height": self.height}

    def to_official_json(self) -> dict[str, Any]:
        """The official release's calibration layout (plus width/height, which it ignores)."""
        return {self.name: {"intrinsics": self.K.tolist(), "extrinsics": self.T_world_cam.tolist(),
                            "width": self.width, "height": self.height}}


# --------------------------------------------------------------------------- observations


@dataclass(frozen=True)
class RGBD:
    """One calibrated RGB-D frame.

    Fields:
        rgb: uint8 H x W x 3, RGB.
        depth: float32 H x W, metres along the camera z axis; 0 or NaN = invalid.
        camera: the camera both images come from; its width/height match the images.
    """

    rgb: np.ndarray
    depth: np.ndarray
    camera: Camera

    def __post_init__(self) -> None:
        rgb = check_rgb_frames("RGBD.rgb", self.rgb, 3)
        depth = _arr("RGBD.depth", self.depth, dtype=np.float32, ndim=2)
        if depth.shape != rgb.shape[:2]:
            raise DataError(f"RGBD.depth: shape {depth.shape} differs from rgb {rgb.shape[:2]}; "
                            "resize one to the other before building RGBD")
        if (self.camera.height, self.camera.width) != rgb.shape[:2]:
            raise DataError(f"RGBD.camera: intrinsics are for {self.camera.width}x{self.camera.height} "
                            f"but the image is {rgb.shape[1]}x{rgb.shape[0]}; use Camera.resized()")
        if np.any(depth[np.isfinite(depth)] < 0):
            raise DataError("RGBD.depth: negative depth values; depth is metres along +z (>= 0)")
        object.__setattr__(self, "rgb", rgb)
        object.__setattr__(self, "depth", depth)

    @property
    def valid(self) -> np.ndarray:
        """bool H x W: pixels with a usable depth (finite and > 0)."""
        return np.isfinite(self.depth) & (self.depth > 0)

    def point_cloud(self, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """World points (M, 3) in metres and their colours (M, 3) uint8 for valid (masked) pixels."""
        keep = self.valid if mask is None else (self.valid & np.asarray(mask, dtype=bool))
        ys, xs = np.nonzero(keep)
        pts = self.camera.backproject(np.stack([xs, ys], -1).astype(np.float64), self.depth[ys, xs])
        return pts, self.rgb[ys, xs]


@dataclass(frozen=True)
class Task:
    """What to do.

    Fields:
        instruction: natural-language task, e.g. "put the bread in the bowl".
        object: text naming the object (or part) that moves, e.g. "bread".
        goal_image: optional uint8 H x W x 3 RGB image of the goal (end-frame conditioning).
    """

    instruction: str
    object: str
    goal_image: np.ndarray | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.instruction, str) or not self.instruction.strip():
            raise DataError("Task.instruction: must be a non-empty string, e.g. 'open the oven'")
        if not isinstance(self.object, str) or not self.object.strip():
            raise DataError("Task.object: must name the object that moves, e.g. 'oven door'")
        if self.goal_image is not None:
            object.__setattr__(self, "goal_image", check_rgb_frames("Task.goal_image", self.goal_image, 3))


@dataclass(frozen=True)
class Observation:
    """What a World returns on reset/step.

    Fields:
        rgbd: the calibrated camera frame.
        joints: the embodiment's joint positions (dof,), radians or metres per joint type.
        state: world-specific plain data (e.g. end-effector pose) that a policy may read.
        privileged: ground-truth object state (poses, articulation angles) for evaluation only;
            solvers must not read it.
    """

    rgbd: RGBD | None
    joints: np.ndarray
    state: Mapping[str, Any] = field(default_factory=dict)
    privileged: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "joints", _arr("Observation.joints",
                                                np.asarray(self.joints, dtype=np.float64), ndim=1, finite=True))


# --------------------------------------------------------------------------- video and depth


@dataclass(frozen=True)
class Framing:
    """Where the camera image sits in a model's frames (a video model that works at its own size).

    A point at camera pixel ``(x, y)`` is at frame pixel ``(sx * (x + 0.5) + ox - 0.5,
    sy * (y + 0.5) + oy - 0.5)`` (pixel centres at integers). ``mode`` says how it was made:
    "stretch" (resized to the frame size, aspect not kept: what diffusers' Wan pipeline does),
    "crop" (scaled to cover the frame, centre cropped) or "pad" (scaled to fit, centre padded).

    Fields:
        sx, sy: scale from camera to frame pixels, > 0.
        ox, oy: offset of the camera image's top-left corner in the frame, frame pixels.
        width, height: the frame size, pixels.
        mode: "stretch", "crop" or "pad" (informative).
    """

    sx: float
    sy: float
    ox: float
    oy: float
    width: int
    height: int
    mode: str = "stretch"

    def __post_init__(self) -> None:
        for n in ("sx", "sy"):
            object.__setattr__(self, n, _float(f"Framing.{n}", getattr(self, n), positive=True))
        for n in ("ox", "oy"):
            object.__setattr__(self, n, _float(f"Framing.{n}", getattr(self, n)))
        for n in ("width", "height"):
            v = getattr(self, n)
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise DataError(f"Framing.{n}: expected a positive int number of pixels, got {v!r}")
            object.__setattr__(self, n, int(v))

    def to_json(self) -> dict[str, Any]:
        return {"sx": self.sx, "sy": self.sy, "ox": self.ox, "oy": self.oy, "width": self.width,
                "height": self.height, "mode": self.mode}


def frames_match(reference: np.ndarray, frames: np.ndarray, tol: float = 1.0) -> bool:
    """Whether ``frames`` (T x H x W x 3) are ``reference`` (same shape, and within ``tol`` mean abs
    difference on the first, middle and last frames: exact, or a lossless round trip). How the
    simulator stand-ins recognise a video their world rendered."""
    f = np.asarray(frames)
    if f.shape != reference.shape:
        return False
    return all(float(np.mean(np.abs(f[t].astype(np.int16) - reference[t].astype(np.int16)))) <= tol
               for t in {0, f.shape[0] // 2, f.shape[0] - 1})


@dataclass(frozen=True)
class Video:
    """A video, generated or recorded.

    Fields:
        frames: uint8 T x H x W x 3, RGB (never 0-1 floats, never BGR), T >= 2.
        fps: frames per second.
        model: what made it (plugin name, model id).
        prompt: the text prompt it was generated from, if any.
        seed: the random seed it was generated with, if any.
        framing: how the conditioning camera image was fitted into these frames, when the model
            works at another size than the camera (adapters that know it set it; the core maps the
            frames back to the camera image with it, see ``d2f_core.flow.resolution``).
    """

    frames: np.ndarray
    fps: float = 8.0
    model: str = ""
    prompt: str = ""
    seed: int | None = None
    framing: Framing | None = None

    def __post_init__(self) -> None:
        frames = check_rgb_frames("Video.frames", self.frames, 4)
        if frames.shape[0] < 2:
            raise DataError(f"Video.frames: a video needs at least 2 frames, got {frames.shape[0]}")
        object.__setattr__(self, "frames", frames)
        object.__setattr__(self, "fps", _float("Video.fps", self.fps, positive=True))

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def height(self) -> int:
        return int(self.frames.shape[1])

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])


@dataclass(frozen=True)
class Alignment:
    """Global affine map from estimated to metric depth: Z = scale * Z_est + shift.

    Fields:
        scale: dimensionless, > 0.
        shift: metres.
        residual: robust RMS of the fit on the pixels used, metres.
        num_pixels: how many pixels the fit used.
    """

    scale: float
    shift: float
    residual: float
    num_pixels: int = 0


@dataclass(frozen=True)
class DepthVideo:
    """Per-frame depth for a video.

    Fields:
        depth: float32 T x H x W; metres when ``metric`` (after alignment), else relative units;
            0 or NaN = invalid. The pipeline's aligned depth is quantised to 0.1 mm (error <= 0.05 mm;
            a coarser power-of-two step beyond 6.55 m), exactly as ``depth.npz`` stores it
            (:mod:`d2f_core.artifacts`).
        metric: whether values are metres.
        alignment: the fit that made it metric, when the core aligned it.
        model: what estimated it.
    """

    depth: np.ndarray
    metric: bool = False
    alignment: Alignment | None = None
    model: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "depth", _arr("DepthVideo.depth", self.depth, dtype=np.float32, ndim=3))

    @property
    def valid(self) -> np.ndarray:
        return np.isfinite(self.depth) & (self.depth > 0)


# --------------------------------------------------------------------------- tracks and flow


@dataclass(frozen=True)
class Tracks2D:
    """2D point tracks through a video.

    Fields:
        xy: float32 T x N x 2, pixel (x, y) of each query point in each frame.
        visible: bool T x N, whether the point is visible (not occluded, inside the image).
        query_frame: int64 N, frame index each query point was given on.
    """

    xy: np.ndarray
    visible: np.ndarray
    query_frame: np.ndarray

    def __post_init__(self) -> None:
        xy = _arr("Tracks2D.xy", self.xy, dtype=np.float32, ndim=3)
        if xy.shape[-1] != 2:
            raise DataError(f"Tracks2D.xy: expected T x N x 2, got {xy.shape}")
        vis = _arr("Tracks2D.visible", self.visible, dtype=np.bool_, shape=xy.shape[:2])
        qf = _arr("Tracks2D.query_frame", self.query_frame, dtype=np.int64, shape=(xy.shape[1],))
        if qf.size and (qf.min() < 0 or qf.max() >= xy.shape[0]):
            raise DataError("Tracks2D.query_frame: indices must lie in [0, T)")
        if np.any(~np.isfinite(xy[vis])):
            raise DataError("Tracks2D.xy: visible points must have finite coordinates")
        object.__setattr__(self, "xy", xy)
        object.__setattr__(self, "visible", vis)
        object.__setattr__(self, "query_frame", qf)

    @property
    def num_frames(self) -> int:
        return int(self.xy.shape[0])

    @property
    def num_points(self) -> int:
        return int(self.xy.shape[1])


@dataclass(frozen=True)
class HandTrack:
    """Hand keypoints through a video (21 OpenPose/MANO keypoints; index 4 = thumb tip).

    Fields:
        keypoints: float32 T x 21 x 2 pixels (x, y); NaN where no hand was found.
        present: bool T, whether a hand was found in that frame.
        keypoints_world: optional float32 T x 21 x 3 metres, world frame, when the detector
            lifts them (or the core does, with depth).
    """

    keypoints: np.ndarray
    present: np.ndarray
    keypoints_world: np.ndarray | None = None

    THUMB_TIP = 4

    def __post_init__(self) -> None:
        kp = _arr("HandTrack.keypoints", self.keypoints, dtype=np.float32, ndim=3)
        if kp.shape[1:] != (21, 2):
            raise DataError(f"HandTrack.keypoints: expected T x 21 x 2, got {kp.shape}")
        pres = _arr("HandTrack.present", self.present, dtype=np.bool_, shape=(kp.shape[0],))
        if np.any(~np.isfinite(kp[pres])):
            raise DataError("HandTrack.keypoints: frames marked present must have finite keypoints")
        object.__setattr__(self, "keypoints", kp)
        object.__setattr__(self, "present", pres)
        if self.keypoints_world is not None:
            object.__setattr__(self, "keypoints_world", _arr(
                "HandTrack.keypoints_world", self.keypoints_world, dtype=np.float32, shape=(kp.shape[0], 21, 3)))

    @property
    def thumb_tip(self) -> np.ndarray:
        """float32 T x 2 thumb-tip pixels (NaN where absent)."""
        return self.keypoints[:, self.THUMB_TIP]


@dataclass(frozen=True)
class ObjectFlow:
    """3D object flow: where each tracked object point is in each frame.

    Fields:
        points: float32 T x N x 3, metres, world frame.
        visible: bool T x N; only visible points carry information.
        colors: uint8 N x 3 RGB colour of each point on the first frame.
        normals: optional float32 N x 3 unit normals on the first frame, world frame.
        fps: frames per second of the source video.
        provenance: plain JSON-able data on how it was made (models, seeds, alignment).
    """

    points: np.ndarray
    visible: np.ndarray
    colors: np.ndarray | None = None
    normals: np.ndarray | None = None
    fps: float = 8.0
    provenance: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        pts = _arr("ObjectFlow.points", self.points, dtype=np.float32, ndim=3)
        if pts.shape[-1] != 3:
            raise DataError(f"ObjectFlow.points: expected T x N x 3, got {pts.shape}")
        vis = _arr("ObjectFlow.visible", self.visible, dtype=np.bool_, shape=pts.shape[:2])
        if np.any(~np.isfinite(pts[vis])):
            raise DataError("ObjectFlow.points: visible points must be finite")
        n = pts.shape[1]
        colors = self.colors if self.colors is not None else np.full((n, 3), 200, np.uint8)
        object.__setattr__(self, "colors", _arr("ObjectFlow.colors", colors, dtype=np.uint8, shape=(n, 3)))
        if self.normals is not None:
            object.__setattr__(self, "normals", _arr("ObjectFlow.normals", self.normals,
                                                     dtype=np.float32, shape=(n, 3)))
        object.__setattr__(self, "points", pts)
        object.__setattr__(self, "visible", vis)
        object.__setattr__(self, "fps", _float("ObjectFlow.fps", self.fps, positive=True))
        object.__setattr__(self, "provenance", dict(self.provenance))

    @property
    def num_frames(self) -> int:
        return int(self.points.shape[0])

    @property
    def num_points(self) -> int:
        return int(self.points.shape[1])

    def save(self, path: str | Path) -> Path:
        """Write a versioned ``.npz`` (``format_version`` = :data:`FLOW_FORMAT_VERSION`)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = dict(points=self.points, visible=self.visible, colors=self.colors,
                      fps=np.float64(self.fps), format_version=np.int64(FLOW_FORMAT_VERSION),
                      provenance=np.array(json.dumps(self.provenance, default=str)))
        if self.normals is not None:
            arrays["normals"] = self.normals
        with open(path, "wb") as f:  # np.savez would append .npz to a name without it
            np.savez_compressed(f, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path, *, max_bytes: int = 256 << 20) -> "ObjectFlow":
        """Read a file written by :meth:`save`; another format version, bad shapes or fields, or arrays
        expanding to more than ``max_bytes`` (256 MiB, some 100 times a 49-frame, 1024-point flow; lower
        with D2F_MAX_ARRAY_BYTES) is a DataError, raised before any array is read."""
        from .safeload import check_array_file
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: flow file not found")
        check_array_file(path, max_bytes)
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except Exception as e:  # zipfile/ValueError on corrupt input
            raise DataError(f"{path}: not a readable .npz flow file ({e})") from None
        if "format_version" not in data:
            raise DataError(f"{path}: no format_version; not a dream2flow ObjectFlow file "
                            "(write it with ObjectFlow.save)")
        try:
            version = int(np.asarray(data["format_version"]).item())
        except (TypeError, ValueError, OverflowError):
            raise DataError(f"{path}: format_version is {str(data['format_version'])[:40]!r}, not an integer; not a "
                            "dream2flow ObjectFlow file (write it with ObjectFlow.save)") from None
        if version != FLOW_FORMAT_VERSION:
            raise DataError(f"{path}: flow format version {version}, this dream2flow reads version "
                            f"{FLOW_FORMAT_VERSION}; re-extract the flow or use a matching dream2flow")
        for key in ("points", "visible"):
            if key not in data:
                raise DataError(f"{path}: missing array {key!r}")
        try:
            prov = json.loads(str(data["provenance"])) if "provenance" in data else {}
        except (ValueError, TypeError) as e:
            raise DataError(f"{path}: provenance is not JSON ({str(e)[:80]}); re-save the flow with "
                            "ObjectFlow.save") from None
        if not isinstance(prov, Mapping):
            raise DataError(f"{path}: provenance is a JSON {type(prov).__name__}, expected an object; re-save the "
                            "flow with ObjectFlow.save")
        fps = np.asarray(data.get("fps", 8.0))
        if fps.size != 1:
            raise DataError(f"{path}: fps is an array of shape {fps.shape}, expected one number")
        try:
            return cls(points=data["points"], visible=data["visible"], colors=data.get("colors"),
                       normals=data.get("normals"), fps=float(fps.item()), provenance=prov)
        except DataError as e:
            raise DataError(f"{path}: {e}") from None
        except (ValueError, TypeError) as e:
            raise DataError(f"{path}: not a valid flow ({type(e).__name__}: {str(e)[:120]})") from None


# --------------------------------------------------------------------------- action side


@dataclass(frozen=True)
class Grasp:
    """A parallel-jaw grasp.

    Fields:
        T_world_grasp: 4x4 gripper pose in the world frame; z = approach direction,
            x = closing direction (jaws move along x), origin between the fingertips.
        width: opening needed, metres.
        score: quality, higher is better (grasper-specific scale).
        source: which view proposed it (e.g. "camera", "top-down").
    """

    T_world_grasp: np.ndarray
    width: float
    score: float = 0.0
    source: str = ""

    def __post_init__(self) -> None:
        T = _as_matrix("Grasp.T_world_grasp", self.T_world_grasp, 4)
        R = T[:3, :3]
        if not np.allclose(R @ R.T, np.eye(3), atol=1e-4) or np.linalg.det(R) < 0:
            raise DataError("Grasp.T_world_grasp: rotation part is not a proper rotation")
        object.__setattr__(self, "T_world_grasp", _arr("Grasp.T_world_grasp", T))
        w = _float("Grasp.width", self.width)
        if w < 0:
            raise DataError(f"Grasp.width: must be >= 0 metres, got {w}")
        object.__setattr__(self, "width", w)
        object.__setattr__(self, "score", _float("Grasp.score", self.score))

    @property
    def position(self) -> np.ndarray:
        return np.array(self.T_world_grasp[:3, 3])

    def to_json(self) -> dict[str, Any]:
        return {"T_world_grasp": self.T_world_grasp.tolist(), "width": self.width,
                "score": self.score, "source": self.source}


@dataclass(frozen=True)
class JointTrajectory:
    """A timed joint-space trajectory.

    Fields:
        q: float64 T x dof joint positions (radians for revolute, metres for prismatic joints).
        t: float64 T, seconds from the start, strictly increasing.
        gripper: float64 T, 0 = open, 1 = closed.
    """

    q: np.ndarray
    t: np.ndarray
    gripper: np.ndarray

    def __post_init__(self) -> None:
        q = _arr("JointTrajectory.q", np.asarray(self.q, dtype=np.float64), ndim=2, finite=True)
        t = _arr("JointTrajectory.t", np.asarray(self.t, dtype=np.float64), shape=(q.shape[0],), finite=True)
        g = _arr("JointTrajectory.gripper", np.asarray(self.gripper, dtype=np.float64),
                 shape=(q.shape[0],), finite=True)
        if t.size > 1 and np.any(np.diff(t) <= 0):
            raise DataError("JointTrajectory.t: times must be strictly increasing")
        if g.size and (g.min() < 0 or g.max() > 1):
            raise DataError("JointTrajectory.gripper: values must lie in [0, 1] (0 open, 1 closed)")
        object.__setattr__(self, "q", q)
        object.__setattr__(self, "t", t)
        object.__setattr__(self, "gripper", g)
