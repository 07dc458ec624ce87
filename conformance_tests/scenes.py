"""Synthetic scenes with known geometry and motion, the inputs of the conformance checks.

Everything is rendered with numpy by ray casting from a calibrated pinhole camera, so ground
truth (3D points, depth, masks, 2D motion) is exact. Deterministic: no global RNG is touched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from d2f_core import RGBD, Camera, ObjectFlow, Task, Video


def look_at(eye, target, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """Camera-to-world 4x4 (OpenCV axes: x right, y down, z forward) looking from eye to target."""
    eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    if np.linalg.norm(x) < 1e-9:  # looking straight along up: pick world +x as image right
        x = np.array([1.0, 0.0, 0.0]) - z * z[0]
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    T = np.eye(4)
    T[:3, 0], T[:3, 1], T[:3, 2], T[:3, 3] = x, y, z, eye
    return T


def pinhole(width: int, height: int, fov_deg: float = 60.0) -> np.ndarray:
    f = 0.5 * width / np.tan(np.deg2rad(fov_deg) / 2)
    return np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1.0]])


def texture(u: np.ndarray, v: np.ndarray, seed: int, scale: float) -> np.ndarray:
    """A smooth, trackable RGB texture (uint8) as a function of surface coordinates (metres)."""
    rng = np.random.default_rng(seed)
    out = np.zeros(u.shape + (3,), np.float64)
    for c in range(3):
        freqs = rng.uniform(0.5, 2.0, size=(4, 2)) * (2 * np.pi / scale)
        phases = rng.uniform(0, 2 * np.pi, size=4)
        acc = sum(np.sin(f[0] * u + f[1] * v + p) for f, p in zip(freqs, phases))
        out[..., c] = acc
    out = 127.5 + 120.0 * np.tanh(out / 2.0)
    return np.clip(out, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class BoxPose:
    x: float
    y: float
    yaw: float


def render_box_scene(camera: Camera, pose: BoxPose, size=(0.08, 0.06, 0.04),
                     table_seed: int = 1, box_seed: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render a textured box (size x, y, z metres) resting on a textured table z=0.

    Returns (rgb uint8 HxWx3, depth float32 HxW metres, box mask bool HxW). Only the box's top
    face and the table are ray-cast (the camera is assumed to look down steeply enough).
    """
    H, W = camera.height, camera.width
    xs, ys = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64))
    dirs_cam = np.stack([(xs - camera.K[0, 2]) / camera.K[0, 0], (ys - camera.K[1, 2]) / camera.K[1, 1],
                         np.ones_like(xs)], -1)
    R, o = camera.T_world_cam[:3, :3], camera.T_world_cam[:3, 3]
    d = dirs_cam @ R.T  # world ray per pixel, scaled so that camera z == 1
    h = size[2]
    with np.errstate(divide="ignore", invalid="ignore"):
        t_top = (h - o[2]) / d[..., 2]
        t_tab = (0.0 - o[2]) / d[..., 2]
    p_top = o + t_top[..., None] * d
    c, s = np.cos(pose.yaw), np.sin(pose.yaw)
    lx = c * (p_top[..., 0] - pose.x) + s * (p_top[..., 1] - pose.y)
    ly = -s * (p_top[..., 0] - pose.x) + c * (p_top[..., 1] - pose.y)
    on_box = (t_top > 0) & (np.abs(lx) <= size[0] / 2) & (np.abs(ly) <= size[1] / 2)
    p_tab = o + t_tab[..., None] * d
    rgb = texture(p_tab[..., 0], p_tab[..., 1], table_seed, 0.4) // 2 + 60
    box_rgb = texture(lx, ly, box_seed, 0.12)
    rgb = np.where(on_box[..., None], box_rgb, rgb)
    depth = np.where(on_box, t_top, t_tab).astype(np.float32)  # camera z of the hit (dirs have z=1)
    depth[~np.isfinite(depth) | (depth <= 0)] = 0.0
    return rgb, depth, on_box


@dataclass(frozen=True)
class ConformanceScene:
    """Known inputs for the checks.

    Fields:
        camera: 64x48 camera above a table, looking down at 60 degrees.
        video: T=8 frames, the box translating +x at ``speed`` m per frame.
        depth: float32 T x H x W metric depth of the video.
        masks: bool T x H x W box masks.
        rgbd: frame 0 as RGBD.
        task: "push the box to the right" / "box".
        flow: the box top-face points' true 3D flow (T x N x 3).
        poses: box pose per frame.
    """

    camera: Camera
    video: Video
    depth: np.ndarray
    masks: np.ndarray
    rgbd: RGBD
    task: Task
    flow: ObjectFlow
    poses: tuple[BoxPose, ...]

    @property
    def mask(self) -> np.ndarray:
        return self.masks[0]


def standard_scene(width: int = 64, height: int = 48, num_frames: int = 8,
                   speed: float = 0.004) -> ConformanceScene:
    K = pinhole(width, height, 60.0)
    cam = Camera(K=K, T_world_cam=look_at((0.0, -0.12, 0.26), (0.0, 0.0, 0.0)), width=width,
                 height=height, name="conformance")
    poses = tuple(BoxPose(-0.02 + speed * t, 0.0, 0.0) for t in range(num_frames))
    frames, depths, masks = zip(*(render_box_scene(cam, p) for p in poses))
    frames, depths, masks = np.stack(frames), np.stack(depths), np.stack(masks)
    # true flow of the box top-face points visible in frame 0
    ys, xs = np.nonzero(masks[0])
    p0 = cam.backproject(np.stack([xs, ys], -1).astype(np.float64), depths[0][ys, xs])
    pts = np.stack([p0 + np.array([p.x - poses[0].x, 0.0, 0.0]) for p in poses]).astype(np.float32)
    flow = ObjectFlow(points=pts, visible=np.ones(pts.shape[:2], bool), colors=frames[0][ys, xs], fps=8.0)
    return ConformanceScene(
        camera=cam, video=Video(frames=frames, fps=8.0, model="conformance-scene"), depth=depths,
        masks=masks, rgbd=RGBD(rgb=frames[0], depth=depths[0], camera=cam),
        task=Task(instruction="push the box to the right", object="box"), flow=flow, poses=poses)


@dataclass
class CheckEnv:
    """Handed to every check and to a conformance-settings ``options`` callable: a temp folder and
    the standard scene, so a plugin that reads files (playback, recorded depth) can write ones
    matching the inputs.

    Fields:
        tmp_dir: a scratch folder that lives as long as the checks.
        scene: the standard scene (:func:`standard_scene`).
        problem_factory: optional ``(env) -> d2f_core.Problem`` used by the solver checks
            (default: the pure-numpy doubles of :mod:`d2f_conformance.doubles`).
        cache: per-run memo the checks use to avoid calling a slow component twice for the same
            inputs (keyed by component id).
        world: the world an embodiment under check is bound to (``d2f check NAME --world W``,
            ``check_plugin(..., world=W)``), else None; the bound-embodiment checks run only with one.

    ``CheckEnv`` is also path-like (``os.fspath(env)`` and ``env / "file"`` refer to ``tmp_dir``),
    so an ``options`` callable written as ``lambda tmp_dir: ...`` keeps working.
    """

    tmp_dir: Path
    scene: ConformanceScene
    problem_factory: Callable[["CheckEnv"], Any] | None = None
    cache: dict = field(default_factory=dict, repr=False, compare=False)
    world: Any = field(default=None, repr=False, compare=False)

    def __fspath__(self) -> str:
        return str(self.tmp_dir)

    def __truediv__(self, other: str) -> Path:
        return Path(self.tmp_dir) / other


# --------------------------------------------------------------------------- synthetic probes


def probe_image(width: int = 56, height: int = 40, rgb: tuple[int, int, int] = (200, 100, 20)) -> np.ndarray:
    """uint8 H x W x 3 image whose R, G, B channels hold the constants ``rgb``.

    Fed through an adapter's ``model_input`` it shows channel order (which constant is first),
    value range (200 -> 200 for 0-255, 0.784 for 0-1) and layout (H, W, C axes all differ).
    """
    return np.broadcast_to(np.asarray(rgb, np.uint8), (height, width, 3)).copy()


def probe_video(num_frames: int = 5, width: int = 56, height: int = 40,
                rgb: tuple[int, int, int] = (200, 100, 20)) -> Video:
    """A :class:`Video` of ``num_frames`` copies of :func:`probe_image` (T, H, W, C all differ)."""
    frames = np.broadcast_to(probe_image(width, height, rgb), (num_frames, height, width, 3)).copy()
    return Video(frames=frames, fps=8.0, model="conformance-probe")


@dataclass(frozen=True)
class ChannelOrderVideo:
    """A video that tells RGB from BGR readers apart.

    The RED channel holds a texture moving ``speed_px`` pixels per frame along +x; the BLUE
    channel holds a static texture of ``blue_contrast`` times the red one's amplitude; GREEN is
    constant 128. A tracker that weights channels as luminance (0.299 R + 0.587 G + 0.114 B) or
    equally follows the red motion; one that reads the frames as BGR (luminance weights applied
    in reverse: 0.299 on blue) sees the static texture dominate and stays put.

    Fields:
        video: the frames (uint8 T x H x W x 3 RGB).
        speed_px: true motion of the red texture, pixels per frame along +x.
    """

    video: Video
    speed_px: float


def channel_order_video(width: int = 64, height: int = 48, num_frames: int = 8, speed_px: float = 1.0,
                        blue_contrast: float = 0.45) -> ChannelOrderVideo:
    """See :class:`ChannelOrderVideo`. ``blue_contrast`` < 1 keeps equal-weight trackers on the
    moving red texture while a BGR reader (whose red weight drops from 0.299 to 0.114) follows blue."""
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    static = texture(xs * 0.01, ys * 0.01, 11, 0.12)[..., 2].astype(np.float64) - 127.5
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    for t in range(num_frames):
        moving = texture((xs - speed_px * t) * 0.01, ys * 0.01, 7, 0.12)[..., 0].astype(np.float64) - 127.5
        frames[t, ..., 0] = np.clip(np.round(128 + moving), 0, 255)
        frames[t, ..., 1] = 128
        frames[t, ..., 2] = np.clip(np.round(128 + blue_contrast * static), 0, 255)
    return ChannelOrderVideo(video=Video(frames=frames, fps=8.0, model="conformance-channel-order"),
                             speed_px=float(speed_px))
