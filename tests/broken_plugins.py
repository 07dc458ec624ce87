"""Deliberately broken components (and their correct twins) for the conformance-suite tests.

Each broken class differs from its twin in exactly one contract violation, so a test can assert
which named check catches it. All pure numpy, small and fast.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np

from d2f_core import (RGBD, DepthVideo, Grasp, IKResult, ModelInputSpec, ObjectFlow, Problem, Tracks2D,
                      Video)
from d2f_core.types import DataError
from d2f_core.validate import check_image, check_mask, check_points, check_queries, check_video
from d2f_conformance.doubles import R_DOWN, TargetWorld

LUMA = np.array([0.299, 0.587, 0.114])  # weights of R, G, B


# --------------------------------------------------------------------------- trackers


def _bilinear(img: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    H, W = img.shape
    x = np.clip(x, 0, W - 1.000001)
    y = np.clip(y, 0, H - 1.000001)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    return (img[y0, x0] * (1 - fx) * (1 - fy) + img[y0, x0 + 1] * fx * (1 - fy)
            + img[y0 + 1, x0] * (1 - fx) * fy + img[y0 + 1, x0 + 1] * fx * fy)


def ssd_track(gray: np.ndarray, queries: np.ndarray, radius: int = 3) -> np.ndarray:
    """Reference template tracker on a T x H x W grey video: each query's (2r+1)^2 patch from its
    query frame is matched (sum of squared differences) in every other frame, searching +-2 px
    around the previous position on a 1 px then a 0.25 px grid. Returns T x N x 2 (x, y)."""
    T, N = gray.shape[0], len(queries)
    g = np.arange(-radius, radius + 1, dtype=np.float64)
    gx, gy = np.meshgrid(g, g)
    grid = np.stack([gx.ravel(), gy.ravel()], -1)
    coarse = np.stack(np.meshgrid(np.arange(-2.0, 2.1), np.arange(-2.0, 2.1)), -1).reshape(-1, 2)
    fine = np.stack(np.meshgrid(np.arange(-0.75, 0.8, 0.25), np.arange(-0.75, 0.8, 0.25)), -1).reshape(-1, 2)
    xy = np.zeros((T, N, 2))
    for i, (t0, x0, y0) in enumerate(np.asarray(queries, np.float64)):
        t0 = int(t0)
        tmpl = _bilinear(gray[t0], x0 + grid[:, 0], y0 + grid[:, 1])
        xy[t0, i] = (x0, y0)
        for frames in (range(t0 + 1, T), range(t0 - 1, -1, -1)):
            p = np.array([x0, y0])
            for t in frames:
                for offs in (coarse, fine):
                    c = p + offs
                    s = _bilinear(gray[t], c[:, None, 0] + grid[None, :, 0], c[:, None, 1] + grid[None, :, 1])
                    p = c[np.argmin(((s - tmpl) ** 2).sum(1))]
                xy[t, i] = p
    return xy.astype(np.float32)


class ReferenceTracker:
    """Correct: RGB frames -> luminance -> SSD template tracking; exposes its model input
    (float32 T x 3 x H x W RGB in 0-255)."""

    name = "reference-tracker"
    capabilities = frozenset({"deterministic", "model_input"})
    model_input_spec = ModelInputSpec(channel_order="RGB", value_range=(0.0, 255.0), layout="TCHW")

    def model_input(self, video: Video) -> np.ndarray:
        check_video(video, "video")
        return np.moveaxis(video.frames.astype(np.float32), -1, 1)

    def gray(self, video: Video) -> np.ndarray:
        return video.frames.astype(np.float64) @ LUMA

    def track(self, video: Video, queries: np.ndarray) -> Tracks2D:
        check_video(video, "video")
        q = check_queries(queries, video)
        xy = ssd_track(self.gray(video), q)
        return Tracks2D(xy=xy, visible=np.ones(xy.shape[:2], bool), query_frame=q[:, 0].astype(np.int64))


class BGRModelInputTracker(ReferenceTracker):
    """Broken: the array fed to the model has its channels reversed (BGR) though the model wants RGB."""

    def model_input(self, video: Video) -> np.ndarray:
        return super().model_input(video)[:, ::-1]


class Div255ModelInputTracker(ReferenceTracker):
    """Broken: divides by 255 though the model (like CoTracker) expects 0-255 floats."""

    def model_input(self, video: Video) -> np.ndarray:
        return super().model_input(video) / 255.0


class FloatVisibilityTracker(ReferenceTracker):
    """Broken: returns a duck-typed result whose visibility is float probabilities."""

    def track(self, video: Video, queries: np.ndarray) -> Any:
        tr = super().track(video, queries)
        return SimpleNamespace(xy=np.array(tr.xy), visible=tr.visible.astype(np.float32),
                               query_frame=np.array(tr.query_frame))


class IgnoresQueryFrameTracker(ReferenceTracker):
    """Broken: starts every track on frame 0, whatever frame the query was given on."""

    def track(self, video: Video, queries: np.ndarray) -> Tracks2D:
        check_video(video, "video")
        q = np.array(check_queries(queries, video))
        qf = q[:, 0].astype(np.int64)
        q[:, 0] = 0
        xy = ssd_track(self.gray(video), q)
        return Tracks2D(xy=xy, visible=np.ones(xy.shape[:2], bool), query_frame=qf)


class BGRReadingTracker(ReferenceTracker):
    """Broken: its own algorithm reads the RGB frames as BGR (luminance weights reversed)."""

    capabilities = frozenset({"deterministic"})

    def gray(self, video: Video) -> np.ndarray:
        return video.frames.astype(np.float64) @ LUMA[::-1]


# --------------------------------------------------------------------------- video models


class GoodVideoModel:
    """Correct: frame t is the image shifted t px right plus seeded noise."""

    name = "good-video"
    capabilities = frozenset({"deterministic"})

    def _rng(self, seed: int | None) -> np.random.Generator:
        return np.random.default_rng(0 if seed is None else seed)

    def generate(self, image: np.ndarray, prompt: str, *, last_image: np.ndarray | None = None,
                 num_frames: int = 49, seed: int | None = None) -> Any:
        img = check_image(image, "image")
        if last_image is not None:
            raise DataError("last_image: this model cannot condition on an end frame")
        if not isinstance(num_frames, int) or num_frames < 2:
            raise DataError(f"num_frames: need an int >= 2, got {num_frames!r}")
        rng = self._rng(seed)
        frames = np.stack([np.roll(img, t, axis=1) for t in range(num_frames)]).astype(np.int16)
        frames[1:] += rng.integers(-3, 4, size=frames[1:].shape).astype(np.int16)
        return self._wrap(np.clip(frames, 0, 255).astype(np.uint8), prompt, seed)

    def _wrap(self, frames: np.ndarray, prompt: str, seed: int | None) -> Any:
        return Video(frames=frames, fps=8.0, model=self.name, prompt=prompt, seed=seed)


class FloatFramesVideoModel(GoodVideoModel):
    """Broken: returns a duck-typed video whose frames are float 0-1."""

    def _wrap(self, frames: np.ndarray, prompt: str, seed: int | None) -> Any:
        return SimpleNamespace(frames=frames.astype(np.float32) / 255.0, fps=8.0, model=self.name)


class RandomVideoModel(GoodVideoModel):
    """Broken: ignores the seed (fresh entropy every call)."""

    def _rng(self, seed: int | None) -> np.random.Generator:
        return np.random.default_rng()


# --------------------------------------------------------------------------- segmenters


class GoodSegmenter:
    """Correct: pixels brighter-contrast than the median colour (bool H x W); no point prompts."""

    name = "good-segmenter"
    capabilities = frozenset({"deterministic"})

    def segment(self, image: np.ndarray, text: str, *, points: np.ndarray | None = None,
                labels: np.ndarray | None = None) -> np.ndarray:
        img = check_image(image, "image").astype(np.float64)
        if points is not None or labels is not None:
            raise DataError("points: this segmenter takes no point prompts")
        dev = np.abs(img - np.median(img.reshape(-1, 3), axis=0)).sum(-1)
        return self._wrap(dev > np.percentile(dev, 80))

    def _wrap(self, mask: np.ndarray) -> np.ndarray:
        return mask


class Uint8MaskSegmenter(GoodSegmenter):
    """Broken: returns a uint8 0/255 mask."""

    def _wrap(self, mask: np.ndarray) -> np.ndarray:
        return mask.astype(np.uint8) * 255


# --------------------------------------------------------------------------- depth estimators


class GoodDepth:
    """Correct: relative depth from brightness (float32, > 0)."""

    name = "good-depth"
    capabilities = frozenset({"deterministic"})

    def estimate(self, video: Video) -> DepthVideo:
        check_video(video, "video")
        self._touch(video)
        d = 1.0 + video.frames.astype(np.float32).mean(-1) / 255.0
        return DepthVideo(depth=d.astype(np.float32), metric=False, model=self.name)

    def _touch(self, video: Video) -> None:
        pass


class MutatingDepth(GoodDepth):
    """Broken: "normalises" the frames in place (through a writeable view of the read-only frames)."""

    def _touch(self, video: Video) -> None:
        frames = video.frames
        frames.flags.writeable = True
        frames //= 2


# --------------------------------------------------------------------------- dynamics


class GoodDynamics:
    """Correct: particles translate by the action (dx, dy, dz), metres."""

    name = "good-dynamics"
    capabilities = frozenset({"deterministic", "particles"})
    action_dim = 3
    action_names = ("dx (m)", "dy (m)", "dz (m)")

    def predict(self, points: np.ndarray, actions: np.ndarray) -> np.ndarray:
        check_points(points, "points")
        a = np.asarray(actions, np.float64)
        if a.ndim != 2 or a.shape[1] != self.action_dim:
            raise DataError(f"actions: expected B x {self.action_dim}, got shape {a.shape}")
        return (points[None] + self._shift(a)[:, None, :]).astype(np.float32)

    def _shift(self, a: np.ndarray) -> np.ndarray:
        return a


class BatchInconsistentDynamics(GoodDynamics):
    """Broken: "normalises" actions with batch statistics, so candidates influence each other."""

    def _shift(self, a: np.ndarray) -> np.ndarray:
        return a - 0.5 * a.mean(axis=0, keepdims=True)


# --------------------------------------------------------------------------- embodiments


def _rot(axis: str, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    if axis == "z":
        return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
    return np.array([[c, 0, s], [0, 1.0, 0], [-s, 0, c]])  # y


class GoodArm:
    """Correct: 3-DoF arm (base yaw about z, shoulder and elbow pitch about y), links 0.3 m and 0.25 m;
    analytic geometric Jacobian in the world frame."""

    name = "good-arm"
    capabilities = frozenset({"deterministic"})
    robot = "yaw-pitch-pitch"
    dof = 3
    joint_names = ("yaw", "shoulder", "elbow")
    joint_limits = np.array([[-2.5, 2.5], [-1.5, 1.5], [-2.0, 2.0]])
    velocity_limits = np.array([1.0, 1.0, 1.5])
    links = (0.3, 0.25)

    def _check(self, q: Any) -> np.ndarray:
        q = np.asarray(q, np.float64)
        if q.shape != (3,) or not np.all(np.isfinite(q)):
            raise DataError(f"q: expected 3 finite joint angles (radians), got {q.tolist()}")
        return q

    def _frames(self, q: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray, np.ndarray]:
        """World axes and origins of the 3 joints, end-effector rotation and position."""
        R0 = _rot("z", q[0])
        R1 = R0 @ _rot("y", q[1])
        R2 = R1 @ _rot("y", q[2])
        o0 = np.array([0.0, 0.0, 0.1])
        o1 = o0
        o2 = o1 + R1 @ np.array([self.links[0], 0, 0])
        p = o2 + R2 @ np.array([self.links[1], 0, 0])
        axes = [R0 @ [0, 0, 1.0], R1 @ [0, 1.0, 0], R2 @ [0, 1.0, 0]]
        return axes, [o0, o1, o2], R2, p

    def fk(self, q: np.ndarray) -> np.ndarray:
        _, _, R, p = self._frames(self._check(q))
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = R, p
        return T

    def jacobian(self, q: np.ndarray) -> np.ndarray:
        axes, origins, R, p = self._frames(self._check(q))
        J = np.zeros((6, 3))
        for i, (z, o) in enumerate(zip(axes, origins)):
            J[:3, i] = np.cross(z, p - o)
            J[3:, i] = self._angular(z, R)
        return J

    def _angular(self, z_world: np.ndarray, R: np.ndarray) -> np.ndarray:
        return z_world

    def ik(self, T_world_ee: np.ndarray, q_init: np.ndarray | None = None, *,
           position_only: bool = False) -> IKResult:
        raise DataError("ik: this arm offers no inverse kinematics (capability 'ik' is not declared)")

    def joint_action(self, q_target: np.ndarray, gripper: float = 0.0) -> np.ndarray:
        return np.append(self._check(q_target), float(gripper))

    def bind(self, world: Any) -> None:
        self.world = world


class EEFrameAngularArm(GoodArm):
    """Broken: angular Jacobian rows in the end-effector frame instead of the world frame."""

    def _angular(self, z_world: np.ndarray, R: np.ndarray) -> np.ndarray:
        return R.T @ z_world


# --------------------------------------------------------------------------- worlds


class GoodWorld(TargetWorld):
    """Correct: the conformance double itself."""

    name = "good-world"


class SeedIgnoringWorld(TargetWorld):
    """Broken: places the box from fresh entropy, whatever the seed."""

    name = "seed-ignoring-world"

    def reset(self, seed: int):
        obs = super().reset(seed)
        self._box = np.array([-0.02, 0.0]) + np.random.default_rng().uniform(-0.03, 0.03, size=2)
        self._box0 = self._box.copy()
        return obs


class FixedPlacementWorld(TargetWorld):
    """Broken: always the same placement (seed unused)."""

    name = "fixed-placement-world"

    def reset(self, seed: int):
        return super().reset(0)


# --------------------------------------------------------------------------- solvers


class _Player:
    def __init__(self, actions: list[np.ndarray]) -> None:
        self.actions = list(actions)
        self.i = 0

    def reset(self, observation: Any) -> None:
        self.i = 0

    def act(self, observation: Any) -> np.ndarray | None:
        if self.i >= len(self.actions):
            return None
        self.i += 1
        return self.actions[self.i - 1].copy()


class GoodSolver:
    """Correct: move the grasp point along the flow's centroid displacement, clipped to the bounds."""

    name = "good-solver"
    capabilities = frozenset({"deterministic", "needs_grasp", "needs_world"})
    overshoot = 0.0  # metres added to x (the broken twin's bug)

    def solve(self, problem: Problem) -> _Player:
        if not isinstance(problem.flow, ObjectFlow):
            raise DataError(f"flow: expected d2f_core.ObjectFlow, got {type(problem.flow).__name__}")
        lo, hi = problem.world.action_low, problem.world.action_high
        pts, vis = problem.flow.points, problem.flow.visible
        c = np.array([pts[t][vis[t]].mean(axis=0) for t in range(pts.shape[0])], np.float64)
        start = problem.grasp.position
        actions = []
        for t in range(pts.shape[0]):
            target = start + (c[t] - c[0]) + np.array([self.overshoot * t, 0, 0])
            actions.append(self._clip(problem.embodiment.joint_action(target), lo, hi))
        return _Player(actions)

    def _clip(self, a: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        return np.clip(a, lo, hi)


class OutOfBoundsSolver(GoodSolver):
    """Broken: overshoots and forgets to clip actions to the world's bounds."""

    overshoot = 0.1

    def _clip(self, a: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        return a


# --------------------------------------------------------------------------- graspers


class GoodGrasper:
    """Correct: top-down grasps at the masked points nearest the object's centroid, best first."""

    name = "good-grasper"
    capabilities = frozenset({"deterministic", "top_down"})

    def propose(self, rgbd: RGBD, mask: np.ndarray, *, top_k: int = 40) -> list[Grasp]:
        m = check_mask(mask, rgbd.depth.shape, "mask")
        pts, _ = rgbd.point_cloud(m)
        if len(pts) == 0:
            raise DataError("mask: selects no pixel with valid depth; segment the object first")
        c = pts.mean(axis=0)
        d = np.linalg.norm(pts - c, axis=1)
        order = np.argsort(d, kind="stable")[:top_k]
        grasps = []
        for i in order:
            T = np.eye(4)
            T[:3, :3], T[:3, 3] = R_DOWN, pts[i]
            grasps.append(Grasp(T_world_grasp=T, width=0.05, score=float(1.0 / (1.0 + 100 * d[i]))))
        return self._order(grasps)

    def _order(self, grasps: list[Grasp]) -> list[Grasp]:
        return sorted(grasps, key=lambda g: g.score, reverse=True)


class UnsortedGrasper(GoodGrasper):
    """Broken: returns grasps worst first."""

    def _order(self, grasps: list[Grasp]) -> list[Grasp]:
        return sorted(grasps, key=lambda g: g.score)
