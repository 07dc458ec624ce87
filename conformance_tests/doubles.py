"""Small, exact pure-numpy components used to build the default solver-check Problem.

* :class:`CartesianEmbodiment`: 3-DoF Cartesian robot (a GraspingArm); q = end-effector position (metres),
  gripper pointing straight down; exact FK, Jacobian and IK.
* :class:`TargetWorld`: the standard scene's box on a table; the action is the end-effector's
  target position (metres, world frame). The end-effector jumps to the (clipped) target; when it
  starts a step within :attr:`TargetWorld.grab_radius` of the box's top centre it carries the box
  by the same horizontal displacement.
* :class:`TranslationDynamics`: action = (dx, dy, dz) metres; every particle moves by it.
* :class:`LinearPushDynamics`: a *trainable* dynamics double (capability ``trainable``): every
  particle moves by the same displacement, linear in the action, learned by Adam steps on the
  mean squared error (numpy, deterministic); ``d2f train`` tests and the trainable checks use it.
* :func:`default_problem`: a Problem whose flow is the box's top face sliding +x from where
  ``reset(seed)`` put it, with a top-down grasp at the flow's first-frame centroid.

They follow the protocols and pass their own conformance checks; no global random state.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from d2f_core.geometry import rotation_angle
from d2f_core.protocols import GRIPPER_CLOSED, GRIPPER_OPEN, IKResult, Problem
from d2f_core.types import RGBD, DataError, DepthVideo, Grasp, ObjectFlow, Observation, Task, Video

from .scenes import BoxPose, look_at, pinhole, render_box_scene

__all__ = ["CartesianEmbodiment", "TargetWorld", "TranslationDynamics", "LinearPushDynamics", "default_problem",
           "R_DOWN"]

R_DOWN = np.diag([1.0, -1.0, -1.0])
"""End-effector orientation of the Cartesian robot: approach axis z points down (world -z)."""


def _vector(name: str, value: Any, n: int) -> np.ndarray:
    a = np.asarray(value, dtype=np.float64)
    if a.shape != (n,):
        raise DataError(f"{name}: expected shape ({n},), got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise DataError(f"{name}: contains NaN or inf")
    return a


class CartesianEmbodiment:
    """3-DoF Cartesian robot: joints x, y, z (metres) = end-effector position in the world frame."""

    name = "conformance-cartesian"
    capabilities = frozenset({"ik", "deterministic", "stand_in", "grasping"})
    robot = "cartesian-3dof"
    T_ee_grasp = np.eye(4)
    """The grasp frame is the end-effector frame (a GraspingArm: z approach = down)."""
    gripper_open = GRIPPER_OPEN
    gripper_closed = GRIPPER_CLOSED
    dof = 3
    joint_names = ("x", "y", "z")

    def __init__(self) -> None:
        self.joint_limits = np.array([[-0.2, 0.2], [-0.2, 0.2], [0.0, 0.3]])  # metres
        self.velocity_limits = np.full(3, 0.5)  # m/s
        self.world: Any = None

    def fk(self, q: np.ndarray) -> np.ndarray:
        """4x4 T_world_ee: translation q (metres), rotation :data:`R_DOWN`."""
        q = _vector("q", q, 3)
        T = np.eye(4)
        T[:3, :3] = R_DOWN
        T[:3, 3] = q
        return T

    def jacobian(self, q: np.ndarray) -> np.ndarray:
        """6 x 3: linear rows identity, angular rows zero (prismatic joints)."""
        _vector("q", q, 3)
        J = np.zeros((6, 3))
        J[:3] = np.eye(3)
        return J

    def ik(self, T_world_ee: np.ndarray, q_init: np.ndarray | None = None, *,
           position_only: bool = False) -> IKResult:
        T = np.asarray(T_world_ee, dtype=np.float64)
        if T.shape != (4, 4) or not np.all(np.isfinite(T)):
            raise DataError(f"T_world_ee: expected a finite 4x4 transform, got shape {T.shape}")
        if q_init is not None:
            _vector("q_init", q_init, 3)
        q = np.clip(T[:3, 3], self.joint_limits[:, 0], self.joint_limits[:, 1])
        pos_err = float(np.linalg.norm(q - T[:3, 3]))
        rot_err = rotation_angle(R_DOWN.T @ T[:3, :3])
        ok = pos_err <= 1e-6 and (position_only or rot_err <= 1e-6)
        return IKResult(q=q, success=bool(ok), position_error=pos_err, rotation_error=rot_err)

    def joint_action(self, q_target: np.ndarray, gripper: float = 0.0) -> np.ndarray:
        """The :class:`TargetWorld` action: the target position itself (``gripper`` in [-1, 1], checked,
        then ignored: the world carries the box without one)."""
        g = float(gripper)
        if not GRIPPER_OPEN <= g <= GRIPPER_CLOSED:
            raise DataError(f"gripper: expected a number in [-1, 1] (-1 open, +1 closed), got {gripper!r}")
        return np.array(_vector("q_target", q_target, 3))

    def grasp_to_ee(self, T_world_grasp: np.ndarray, width: float = 0.0) -> np.ndarray:
        """The end-effector pose for a grasp: the grasp pose itself (T_ee_grasp is the identity)."""
        T = np.array(T_world_grasp, dtype=np.float64)
        if T.shape != (4, 4) or not np.all(np.isfinite(T)):
            raise DataError(f"T_world_grasp: expected a finite 4x4 transform, got shape {T.shape}")
        return T

    def bind(self, world: Any) -> None:
        self.world = world


class TargetWorld:
    """The standard scene's box on a table; action = end-effector target position (metres)."""

    name = "conformance-target"
    capabilities = frozenset({"deterministic", "stand_in", "segmentation"})
    horizon = 20
    control_freq = 10.0  # steps per simulated second
    grab_radius = 0.03  # metres from the box's top centre
    box_size = (0.08, 0.06, 0.04)  # metres
    home = (0.0, -0.1, 0.15)  # end-effector position after reset, metres

    def __init__(self, width: int = 64, height: int = 48) -> None:
        from d2f_core.types import Camera
        self.camera = Camera(K=pinhole(width, height, 60.0),
                             T_world_cam=look_at((0.0, -0.12, 0.26), (0.0, 0.0, 0.0)),
                             width=width, height=height, name="conformance")
        self.task = Task(instruction="push the box to the right", object="box")
        self.action_low = np.array([-0.2, -0.2, 0.0])
        self.action_high = np.array([0.2, 0.2, 0.3])
        self._ee = np.array(self.home)
        self._box = np.zeros(2)
        self._box0 = np.zeros(2)

    def reset(self, seed: int) -> Observation:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise DataError(f"seed: expected an int, got {seed!r}")
        rng = np.random.default_rng(int(seed))
        self._box = np.array([-0.02, 0.0]) + rng.uniform(-0.03, 0.03, size=2)
        self._box0 = self._box.copy()
        self._ee = np.array(self.home)
        return self._observation()

    def step(self, action: np.ndarray) -> Observation:
        a = _vector("action", action, 3)
        target = np.clip(a, self.action_low, self.action_high)
        top = np.array([*self._box, self.box_size[2]])
        if np.linalg.norm(self._ee - top) <= self.grab_radius:
            self._box = self._box + (target[:2] - self._ee[:2])
        self._ee = target
        return self._observation()

    def box_pose(self) -> BoxPose:
        return BoxPose(float(self._box[0]), float(self._box[1]), 0.0)

    def render(self) -> RGBD:
        rgb, depth, _ = render_box_scene(self.camera, self.box_pose(), size=self.box_size)
        return RGBD(rgb=rgb, depth=depth, camera=self.camera)

    def box_mask(self) -> np.ndarray:
        """bool H x W: pixels of the box's top face (the double's segmentation oracle)."""
        return render_box_scene(self.camera, self.box_pose(), size=self.box_size)[2]

    def object_mask(self, name: str) -> np.ndarray:
        """bool H x W mask of ``name``: "box" (its top face) or "table"."""
        key = str(name).strip().lower()
        if key not in ("box", "table"):
            raise DataError(f"name: no object {name!r} in this world; known objects: box, table")
        box = self.box_mask()
        return box if key == "box" else ~box

    def success(self) -> bool:
        return bool(self._box[0] - self._box0[0] >= 0.02)

    def privileged_state(self) -> Mapping[str, Any]:
        return {"box_xy": self._box.copy(), "ee": self._ee.copy()}

    def describe_state(self) -> str:
        return f"box moved {100 * (self._box[0] - self._box0[0]):.1f} cm right (success needs >= 2)"

    def _observation(self) -> Observation:
        return Observation(rgbd=self.render(), joints=self._ee.copy(), state={"ee": self._ee.copy()},
                           privileged=self.privileged_state())


class TranslationDynamics:
    """Every particle moves by the action (dx, dy, dz), metres, world frame."""

    name = "conformance-translation"
    capabilities = frozenset({"deterministic", "stand_in", "particles"})
    action_dim = 3
    action_names = ("dx (m)", "dy (m)", "dz (m)")

    def predict(self, points: np.ndarray, actions: np.ndarray) -> np.ndarray:
        from d2f_core.validate import check_points
        check_points(points, "points")
        a = np.asarray(actions, dtype=np.float64)
        if a.ndim != 2 or a.shape[1] != 3:
            raise DataError(f"actions: expected B x 3 (dx, dy, dz) metres, got shape {a.shape}")
        if not np.all(np.isfinite(a)):
            raise DataError("actions: contains NaN or inf")
        return (points[None].astype(np.float64) + a[:, None, :]).astype(np.float32)


def default_problem(env: Any = None, *, seed: int = 0, num_frames: int = 8, speed: float = 0.004,
                    max_points: int = 64) -> Problem:
    """A Problem on :class:`TargetWorld`: follow the box's top face sliding +x by ``speed`` m/frame.

    The flow starts where ``reset(seed)`` put the box (so it is consistent with the observation),
    the grasp is top-down at the flow's first-frame centroid, the dynamics is
    :class:`TranslationDynamics`, and ``world`` is the world itself. ``extras`` holds the imagined
    video of that motion (``video``: Video, ``depth``: metric DepthVideo, ``mask``: the box's
    first-frame mask), for solvers that read pixels.
    """
    world = TargetWorld()
    embodiment = CartesianEmbodiment()
    embodiment.bind(world)
    obs = world.reset(seed)
    mask = world.box_mask()
    ys, xs = np.nonzero(mask)
    keep = np.unique(np.linspace(0, xs.size - 1, min(max_points, xs.size)).round().astype(int))
    ys, xs = ys[keep], xs[keep]
    p0 = world.camera.backproject(np.stack([xs, ys], -1).astype(np.float64), obs.rgbd.depth[ys, xs])
    pts = np.stack([p0 + np.array([speed * t, 0.0, 0.0]) for t in range(num_frames)]).astype(np.float32)
    flow = ObjectFlow(points=pts, visible=np.ones(pts.shape[:2], bool), colors=obs.rgbd.rgb[ys, xs], fps=8.0,
                      provenance={"source": "d2f_conformance.doubles.default_problem", "seed": seed})
    T = np.eye(4)
    T[:3, :3] = R_DOWN
    T[:3, 3] = pts[0].mean(axis=0)
    grasp = Grasp(T_world_grasp=T, width=0.06, score=1.0, source="conformance")
    # the imagined video of that motion (for solvers that read pixels, e.g. AVDC's optical flow)
    box = world.box_pose()
    frames, depths = [], []
    for t in range(num_frames):
        rgb, depth, _ = render_box_scene(world.camera, BoxPose(box.x + speed * t, box.y, box.yaw),
                                         size=world.box_size)
        frames.append(rgb)
        depths.append(depth)
    extras = {"video": Video(frames=np.stack(frames), fps=8.0, model="conformance"),
              "depth": DepthVideo(depth=np.stack(depths), metric=True, model="conformance"), "mask": mask}
    return Problem(flow=flow, observation=obs, embodiment=embodiment, task=world.task, grasp=grasp,
                   grasped=np.ones(pts.shape[1], bool), dynamics=TranslationDynamics(), world=world, seed=seed,
                   extras=extras)


class LinearPushDynamics:
    """A trainable dynamics double: ``next = points + [action, 1] @ W`` (one 3-vector per action, the same
    for every particle), ``W`` ((action_dim + 1) x 3, metres) learned by ``steps_per_fit`` Adam steps per
    :meth:`fit` on the mean squared displacement error. Pure numpy, one thread, no global random state:
    the same data in the same order give bit-identical weights, so a resumed ``d2f train`` can be compared
    with an uninterrupted one.

    ``fit`` continues from the current weights and optimiser state (what ``d2f train`` expects of every
    trainable model); ``save``/``load`` keep both.
    """

    name = "conformance-linear-push"
    capabilities = frozenset({"deterministic", "stand_in", "particles", "trainable"})
    FILE = "linear_push.npz"

    def __init__(self, action_dim: int = 3, *, lr: float = 0.01, steps_per_fit: int = 50, seed: int = 0) -> None:
        if isinstance(action_dim, bool) or not isinstance(action_dim, (int, np.integer)) or action_dim < 1:
            raise ValueError(f"action_dim: expected a positive int, got {action_dim!r}")
        self.action_dim = int(action_dim)
        self.action_names = tuple(f"a{i} (m)" for i in range(self.action_dim))
        self.lr, self.steps_per_fit = float(lr), int(steps_per_fit)
        rng = np.random.default_rng(seed)
        self.W = rng.normal(0.0, 0.02, size=(self.action_dim + 1, 3))
        self._m = np.zeros_like(self.W)
        self._v = np.zeros_like(self.W)
        self._t = 0

    def _actions(self, actions: Any, name: str = "actions") -> np.ndarray:
        if not isinstance(actions, np.ndarray) or actions.ndim != 2 or actions.shape[1] != self.action_dim:
            shape = getattr(actions, "shape", type(actions).__name__)
            raise ValueError(f"{name}: expected a numpy array B x {self.action_dim} (a single action is a "
                             f"1 x {self.action_dim} batch), got {shape}")
        a = actions.astype(np.float64)
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name}: contains NaN or inf")
        return np.concatenate([a, np.ones((a.shape[0], 1))], axis=1)

    def predict(self, points: np.ndarray, actions: np.ndarray) -> np.ndarray:
        from d2f_core.validate import check_points
        pts = check_points(points, "points").astype(np.float64)
        shift = self._actions(actions) @ self.W  # B x 3
        return (pts[None] + shift[:, None, :]).astype(np.float32)

    def fit(self, transitions: Mapping[str, np.ndarray], *, progress: Any = None) -> dict[str, float]:
        for key in ("points", "actions", "next_points"):
            if key not in transitions:
                raise ValueError(f"{key}: transitions lack {key!r}; pass a mapping with points K x N x 3, actions "
                                 f"K x {self.action_dim} and next_points K x N x 3")
        pts = np.asarray(transitions["points"], dtype=np.float64)
        nxt = np.asarray(transitions["next_points"], dtype=np.float64)
        if pts.ndim != 3 or pts.shape[2] != 3 or nxt.shape != pts.shape:
            raise ValueError(f"next_points: expected points and next_points of one shape K x N x 3, got "
                             f"{pts.shape} and {nxt.shape}")
        if not (np.all(np.isfinite(pts)) and np.all(np.isfinite(nxt))):
            raise ValueError("points: transitions hold NaN or inf positions; drop those transitions")
        X = self._actions(np.asarray(transitions["actions"]), "actions")
        if X.shape[0] != pts.shape[0]:
            raise ValueError(f"actions: {X.shape[0]} actions for {pts.shape[0]} transitions")
        Y = (nxt - pts).mean(axis=1)  # K x 3: the least-squares shared displacement of each transition
        b1, b2, eps = 0.9, 0.999, 1e-8
        losses = []
        for i in range(self.steps_per_fit):
            err = X @ self.W - Y
            losses.append(float(np.mean(err ** 2)))
            grad = 2.0 * X.T @ err / (err.size)
            self._t += 1
            self._m = b1 * self._m + (1 - b1) * grad
            self._v = b2 * self._v + (1 - b2) * grad ** 2
            m_hat = self._m / (1 - b1 ** self._t)
            v_hat = self._v / (1 - b2 ** self._t)
            self.W = self.W - self.lr * m_hat / (np.sqrt(v_hat) + eps)
            if progress is not None:
                progress(i + 1, self.steps_per_fit, {"loss": losses[-1]})
        loss = float(np.mean((X @ self.W - Y) ** 2))
        return {"loss": loss, "loss_before": losses[0] if losses else loss, "adam_steps": float(self._t)}

    def save(self, directory: str) -> None:
        from pathlib import Path
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        with open(d / self.FILE, "wb") as f:
            np.savez(f, W=self.W, m=self._m, v=self._v, t=np.int64(self._t), action_dim=np.int64(self.action_dim))

    def load(self, directory: str) -> None:
        from pathlib import Path
        path = Path(directory) / self.FILE
        if not path.is_file():
            raise FileNotFoundError(f"directory: {path} not found; load() reads what save(directory) wrote")
        with np.load(path) as z:
            if int(z["action_dim"]) != self.action_dim:
                raise ValueError(f"directory: {path} holds a model with action_dim {int(z['action_dim'])}, this "
                                 f"one has {self.action_dim}")
            self.W, self._m, self._v, self._t = (z["W"].copy(), z["m"].copy(), z["v"].copy(), int(z["t"]))
