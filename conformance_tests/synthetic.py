"""Synthetic sequences with known 3D motion for testing flow extraction end to end.

A scene is a set of textured rectangles ("patches"), each attached to a named part whose pose is
known in every frame; a box is six patches on one part, a hinged panel a patch on a part that
rotates about an edge. Frames are ray-cast from a calibrated pinhole camera (numpy only), so the
ground truth is exact: RGB, metric depth, part masks, and the true world position of every
surface point in every frame (:meth:`SyntheticSequence.true_points`).

>>> seq = rigid_box_sequence(num_frames=12)
>>> seq.rgb.shape, seq.depth.shape   # (T, H, W, 3) uint8, (T, H, W) float32 metres
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from d2f_core import RGBD, Camera, Video

from .scenes import look_at, pinhole


def texture(u: np.ndarray, v: np.ndarray, seed: int, scale: float, tint=(1.0, 1.0, 1.0)) -> np.ndarray:
    """Isotropic smooth random texture (uint8 RGB) of surface coordinates (metres): blobs of about
    ``scale`` metres, many orientations (no aperture problem for a tracker), tinted per surface."""
    rng = np.random.default_rng(seed)
    out = np.zeros(u.shape + (3,), np.float64)
    for c in range(3):
        ang = rng.uniform(0, np.pi, 10)
        freq = rng.uniform(0.6, 1.6, 10) * (2 * np.pi / scale)
        ph = rng.uniform(0, 2 * np.pi, 10)
        acc = sum(np.sin(f * (np.cos(a) * u + np.sin(a) * v) + p) for a, f, p in zip(ang, freq, ph))
        out[..., c] = (127.5 + 110.0 * np.tanh(acc / 2.5)) * tint[c]
    return np.clip(out, 0, 255).astype(np.uint8)


def rot(axis: str, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == "y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def pose(R: np.ndarray | None = None, t=(0.0, 0.0, 0.0)) -> np.ndarray:
    T = np.eye(4)
    if R is not None:
        T[:3, :3] = R
    T[:3, 3] = t
    return T


@dataclass(frozen=True)
class Patch:
    """A textured rectangle spanning local x in [0, w], y in [0, h], z = 0 of ``T_part_patch``."""

    part: str
    size: tuple[float, float]
    T_part_patch: np.ndarray
    seed: int
    texture_scale: float = 0.05
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)


@dataclass
class SyntheticSequence:
    """Rendered frames with ground truth. Part poses: ``poses[part]`` is T x 4 x 4 world-from-part."""

    camera: Camera
    patches: list[Patch]
    poses: dict[str, np.ndarray]
    cameras: list[Camera]
    rgb: np.ndarray = field(init=False)
    depth: np.ndarray = field(init=False)
    part_id: np.ndarray = field(init=False)
    hit_local: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        T = len(self.cameras)
        frames = [self._render(t) for t in range(T)]
        self.rgb = np.stack([f[0] for f in frames])
        self.depth = np.stack([f[1] for f in frames])
        self.part_id = np.stack([f[2] for f in frames])
        self.hit_local = np.stack([f[3] for f in frames])

    @property
    def parts(self) -> list[str]:
        return list(dict.fromkeys(p.part for p in self.patches))

    @property
    def num_frames(self) -> int:
        return len(self.cameras)

    def _render(self, t: int):
        cam = self.cameras[t]
        H, W = cam.height, cam.width
        xs, ys = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64))
        d_cam = np.stack([(xs - cam.K[0, 2]) / cam.K[0, 0], (ys - cam.K[1, 2]) / cam.K[1, 1], np.ones_like(xs)], -1)
        R, o = cam.T_world_cam[:3, :3], cam.T_world_cam[:3, 3]
        d = d_cam @ R.T  # world direction per pixel, scaled so camera z == 1 (ray parameter = depth)
        best = np.full((H, W), np.inf)
        rgb = np.zeros((H, W, 3), np.uint8)
        pid = np.full((H, W), -1, np.int64)
        local = np.zeros((H, W, 3))
        parts = self.parts
        for k, p in enumerate(self.patches):
            Tw = self.poses[p.part][t] @ p.T_part_patch
            n, c = Tw[:3, 2], Tw[:3, 3]
            denom = d @ n
            with np.errstate(divide="ignore", invalid="ignore"):
                s = ((c - o) @ n) / denom
            hit = o + s[..., None] * d
            lp = (hit - c) @ Tw[:3, :3]  # patch-local coordinates
            inside = (s > 1e-6) & (lp[..., 0] >= 0) & (lp[..., 0] <= p.size[0]) & (lp[..., 1] >= 0) \
                & (lp[..., 1] <= p.size[1]) & (s < best)
            if not inside.any():
                continue
            best[inside] = s[inside]
            rgb[inside] = texture(lp[..., 0][inside], lp[..., 1][inside], p.seed, p.texture_scale, p.tint)
            pid[inside] = parts.index(p.part)
            # the hit in the PART's frame: the ground truth that moves with the part
            hp = np.concatenate([hit[inside], np.ones((int(inside.sum()), 1))], 1)
            local[inside] = (np.linalg.inv(self.poses[p.part][t]) @ hp.T).T[:, :3]
        depth = np.where(np.isfinite(best), best, 0.0).astype(np.float32)
        return rgb, depth, pid, local

    def mask(self, *parts: str, frame: int = 0) -> np.ndarray:
        ids = [self.parts.index(p) for p in parts]
        return np.isin(self.part_id[frame], ids)

    def rgbd(self, frame: int = 0) -> RGBD:
        return RGBD(rgb=self.rgb[frame], depth=self.depth[frame], camera=self.cameras[frame])

    def video(self, fps: float = 8.0) -> Video:
        return Video(frames=self.rgb, fps=fps, model="synthetic")

    def true_points(self, xy0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World positions (T x N x 3) of the surface points seen at pixels ``xy0`` (N x 2, frame 0),
        and whether each is a hit (N,). Exact: the hit is moved with its part's known pose."""
        xi = np.clip(np.rint(xy0[:, 0]).astype(int), 0, self.camera.width - 1)
        yi = np.clip(np.rint(xy0[:, 1]).astype(int), 0, self.camera.height - 1)
        pid = self.part_id[0, yi, xi]
        cam = self.cameras[0]
        K_inv, R, o = np.linalg.inv(cam.K), cam.T_world_cam[:3, :3], cam.T_world_cam[:3, 3]
        ok = pid >= 0
        pts = np.zeros((self.num_frames, len(xy0), 3))
        parts = self.parts
        for j in np.nonzero(ok)[0]:
            # exact sub-pixel hit: intersect the query's ray with the plane of the patch hit at the
            # pixel centre (patches are planar), then move that point with its part
            part = parts[pid[j]]
            local = self.hit_local[0, yi[j], xi[j]]
            ray_w = R @ (K_inv @ np.array([xy0[j, 0], xy0[j, 1], 1.0]))
            T0 = self.poses[part][0]
            p_centre = T0[:3, :3] @ local + T0[:3, 3]
            n = self._normal_at(part, local)
            p0 = o + ((p_centre - o) @ n) / (ray_w @ n) * ray_w
            lp = np.linalg.inv(T0) @ np.append(p0, 1.0)
            pts[:, j] = (self.poses[part] @ lp)[:, :3]
        return pts, ok

    def _normal_at(self, part: str, local: np.ndarray) -> np.ndarray:
        best, normal = np.inf, np.array([0.0, 0.0, 1.0])
        for p in self.patches:
            if p.part != part:
                continue
            lp = np.linalg.inv(p.T_part_patch) @ np.append(local, 1.0)
            if abs(lp[2]) < best:
                best, normal = abs(lp[2]), p.T_part_patch[:3, 2]
        T0 = self.poses[part][0]
        return T0[:3, :3] @ normal


def _default_camera(width: int, height: int, eye=(0.0, -0.45, 0.55), target=(0.03, 0.02, 0.04)) -> Camera:
    return Camera(K=pinhole(width, height, 60.0), T_world_cam=look_at(eye, target), width=width, height=height,
                  name="synthetic")


def _table(size: float = 1.6) -> list[Patch]:
    return [Patch("table", (size, size), pose(t=(-size / 2, -size / 2, 0.0)), seed=11, texture_scale=0.06,
                  tint=(0.55, 0.6, 0.7))]


def box_patches(part: str, size=(0.12, 0.09, 0.07), seed: int = 3) -> list[Patch]:
    """Six faces of a box centred on the part origin (x, y), bottom at z = 0, outward normals."""
    sx, sy, sz = size
    hx, hy = sx / 2, sy / 2
    faces = [
        (pose(None, (-hx, -hy, sz)), (sx, sy)),                                   # top, normal +z
        (pose(rot("x", np.pi / 2), (-hx, -hy, 0.0)), (sx, sz)),                   # front (y=-hy), normal -y
        (pose(rot("x", np.pi / 2) @ rot("y", np.pi), (hx, hy, 0.0)), (sx, sz)),   # back (y=+hy), normal +y
        (pose(rot("z", -np.pi / 2) @ rot("x", np.pi / 2), (-hx, hy, 0.0)), (sy, sz)),  # left (x=-hx), normal -x
        (pose(rot("z", np.pi / 2) @ rot("x", np.pi / 2), (hx, -hy, 0.0)), (sy, sz)),   # right (x=+hx), normal +x
    ]
    return [Patch(part, s, T, seed=seed + i, texture_scale=0.03, tint=(1.0, 0.85, 0.5)) for i, (T, s) in enumerate(faces)]


def rigid_box_sequence(num_frames: int = 16, width: int = 160, height: int = 120, *,
                       translation=(0.12, 0.06, 0.05), yaw: float = 0.5, pitch: float = 0.0,
                       camera_shake_px: float = 0.0, leave_view: bool = False) -> SyntheticSequence:
    """A textured box on a table translating by ``translation`` (m) and turning by ``yaw`` (rad)
    over the sequence (smooth ease-in-out). ``camera_shake_px`` moves the camera (a bad video);
    ``leave_view`` slides the box out of the image."""
    cam = _default_camera(width, height)
    s = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, num_frames))  # ease in-out, 0..1
    trans = np.array([1.5, 0.0, 0.0]) if leave_view else np.asarray(translation, float)
    box = np.stack([pose(rot("z", yaw * si) @ rot("x", pitch * si), trans * si) for si in s])
    table = np.stack([np.eye(4)] * num_frames)
    cams = []
    for t in range(num_frames):
        T = cam.T_world_cam.copy()
        if camera_shake_px:
            # rotate the camera about its own y axis: about shake_px pixels of image motion per step
            ang = camera_shake_px * t / cam.K[0, 0]
            T[:3, :3] = T[:3, :3] @ rot("y", ang)
        cams.append(Camera(K=cam.K, T_world_cam=T, width=width, height=height, name="synthetic"))
    return SyntheticSequence(camera=cam, patches=_table() + box_patches("box"), poses={"table": table, "box": box},
                             cameras=cams)


def hinged_panel_sequence(num_frames: int = 16, width: int = 160, height: int = 120, *,
                          angle: float = 1.0) -> SyntheticSequence:
    """An oven-like object: a static frame (body) and a panel (door) hinged at its bottom edge,
    opening by ``angle`` rad towards the camera. Parts: "body" (static) and "door" (moving)."""
    cam = _default_camera(width, height, eye=(0.12, -0.42, 0.42), target=(0.0, 0.0, 0.1))
    s = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, num_frames))
    W_, H_ = 0.24, 0.18
    # body: a vertical back plate and two side posts, facing -y (towards the camera)
    facing = rot("x", np.pi / 2)  # local y -> world z, normal local z -> world -y
    body = [
        Patch("body", (W_ + 0.12, H_ + 0.1), pose(facing, (-(W_ + 0.12) / 2, 0.05, 0.0)), seed=21, texture_scale=0.04, tint=(0.6, 0.9, 0.6)),
        Patch("body", (0.06, H_ + 0.1), pose(facing, (-(W_ / 2 + 0.06), -0.001, 0.0)), seed=22, texture_scale=0.03, tint=(0.6, 0.9, 0.6)),
        Patch("body", (0.06, H_ + 0.1), pose(facing, (W_ / 2, -0.001, 0.0)), seed=23, texture_scale=0.03, tint=(0.6, 0.9, 0.6)),
    ]
    # door: hinge along world x at (y=-0.002, z=0.02); closed it stands vertical in front of the body
    door = [Patch("door", (W_, H_), pose(facing, (-W_ / 2, 0.0, 0.0)), seed=24, texture_scale=0.03, tint=(1.0, 0.6, 0.6))]
    hinge = np.array([0.0, -0.002, 0.02])
    door_pose = np.stack([pose(rot("x", angle * si), hinge) for si in s])  # top swings to -y (the camera)
    static = np.stack([np.eye(4)] * num_frames)
    cams = [cam] * num_frames
    return SyntheticSequence(camera=cam, patches=_table() + body + door,
                             poses={"table": static, "body": static, "door": door_pose}, cameras=cams)
