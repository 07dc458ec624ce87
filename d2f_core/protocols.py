"""One ``typing.Protocol`` per component kind.

A plugin is any object with these attributes and methods; it need not inherit from anything.
Every component has a ``name`` and declared ``capabilities`` (strings from :data:`CAPABILITIES`);
the conformance suite (``d2f_conformance``) checks that the declared capabilities are honoured.
Inputs are validated by the component and rejected with a ``ValueError`` whose message names
the argument and the fix; outputs are the types of :mod:`d2f_core.types`, which validate
themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, runtime_checkable

import numpy as np

from .types import (RGBD, Camera, DepthVideo, Grasp, HandTrack, ObjectFlow, Observation, Task, Tracks2D,
                    Video)

KINDS: tuple[str, ...] = ("video", "depth", "segmenter", "tracker", "hand", "grasper", "dynamics",
                          "embodiment", "world", "solver")
"""The component kinds, in pipeline order. Plugin manifests name one of these."""

CAPABILITIES: dict[str, dict[str, str]] = {
    "*": {
        "needs_weights": "loads model weights from a local path given in options",
        "api": "calls a remote service; needs an API key in the environment",
        "stand_in": "a stand-in (simulator oracle, playback, test double) for a real model",
        "deterministic": "the same inputs and seed give the same outputs",
        "model_input": "exposes model_input(x) and model_input_spec, the array its model receives",
    },
    "video": {"end_frame_conditioning": "accepts last_image", "text_only": "ignores the image"},
    "depth": {"metric_depth": "returns metres (alignment still fits scale/shift)"},
    "segmenter": {"text_prompt": "uses the text", "point_prompts": "accepts points/labels"},
    "tracker": {"online": "can track frame by frame", "zero_motion": "a test double: no motion"},
    "hand": {"world_keypoints": "returns keypoints_world"},
    "grasper": {"top_down": "proposes top-down grasps"},
    "dynamics": {"particles": "predicts per-particle motion",
                 "rigid_grasp": "held points move rigidly with the end-effector (attach, local, moved, grasped)"},
    "embodiment": {"ik": "solves inverse kinematics", "hardware": "can drive a real robot"},
    "world": {"oracle": "can script the task done right (sim-oracle video)",
              "segmentation": "object_mask(name) from the simulator"},
    "solver": {"needs_dynamics": "uses Problem.dynamics", "needs_world": "uses Problem.world",
               "needs_grasp": "uses Problem.grasp"},
}


@dataclass(frozen=True)
class ModelInputSpec:
    """What a model behind an adapter expects to receive (an upstream fact the adapter declares).

    Fields:
        channel_order: "RGB" or "BGR".
        value_range: (low, high) of pixel values, e.g. (0, 255) or (0, 1).
        layout: axis names of the array fed to the model, e.g. "BTCHW", "THWC", "HWC".
    """

    channel_order: str = "RGB"
    value_range: tuple[float, float] = (0.0, 255.0)
    layout: str = "THWC"


@dataclass(frozen=True)
class IKResult:
    """Inverse kinematics outcome.

    Fields:
        q: (dof,) joint positions, within joint limits.
        success: whether the pose was reached within tolerance.
        position_error: metres; rotation_error: radians.
    """

    q: np.ndarray
    success: bool
    position_error: float
    rotation_error: float


@runtime_checkable
class Component(Protocol):
    name: str
    capabilities: frozenset[str]


@runtime_checkable
class VideoModel(Component, Protocol):
    def generate(self, image: np.ndarray, prompt: str, *, last_image: np.ndarray | None = None,
                 num_frames: int = 49, seed: int | None = None) -> Video:
        """Imagine the task from ``image`` (uint8 H x W x 3 RGB) and ``prompt``.

        Returns a :class:`Video` with ``num_frames`` RGB uint8 frames (the model may snap the
        count to its own grid, e.g. 4k+1, and says so in ``Video.model``); frame 0 shows the
        input image. ``last_image`` conditions the end frame (capability
        ``end_frame_conditioning``; others raise ValueError when it is given).
        """
        ...


@runtime_checkable
class DepthEstimator(Component, Protocol):
    def estimate(self, video: Video) -> DepthVideo:
        """Per-frame depth (T x H x W float32, the video's size), relative or metric.

        Alignment to the real first-frame depth is the core's job, not the estimator's.
        """
        ...


@runtime_checkable
class Segmenter(Component, Protocol):
    def segment(self, image: np.ndarray, text: str, *, points: np.ndarray | None = None,
                labels: np.ndarray | None = None) -> np.ndarray:
        """bool H x W mask of the object named by ``text`` in ``image`` (uint8 H x W x 3 RGB).

        ``points`` (M x 2 pixels, x y) with ``labels`` (M, 1 = positive, 0 = negative) refine
        the mask (capability ``point_prompts``).
        """
        ...


@runtime_checkable
class Tracker(Component, Protocol):
    def track(self, video: Video, queries: np.ndarray) -> Tracks2D:
        """Track ``queries`` (float32 N x 3 as (t, x, y): frame index, pixel x, pixel y).

        Returns T x N tracks; at its query frame a point is where it was asked for.
        """
        ...


@runtime_checkable
class HandDetector(Component, Protocol):
    def detect(self, video: Video) -> HandTrack:
        """Hand keypoints per frame (index 4 = thumb tip), ``present`` False where no hand."""
        ...


@runtime_checkable
class Grasper(Component, Protocol):
    def propose(self, rgbd: RGBD, mask: np.ndarray, *, top_k: int = 40) -> list[Grasp]:
        """Up to ``top_k`` grasps on the object in ``mask`` (bool H x W), best first."""
        ...


@runtime_checkable
class DynamicsModel(Component, Protocol):
    action_dim: int
    """Length of one action vector; ``action_names`` says what each entry is and its unit."""

    action_names: tuple[str, ...]

    def predict(self, points: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Next particle positions for each candidate action.

        ``points``: float32 N x 3 metres, world frame. ``actions``: float B x action_dim.
        Returns float32 B x N x 3.
        """
        ...


@runtime_checkable
class Embodiment(Component, Protocol):
    robot: str
    """Identifier of the robot model worlds match on (e.g. "point-mass", "Panda")."""

    dof: int
    joint_names: tuple[str, ...]
    joint_limits: np.ndarray
    """dof x 2 (low, high), radians or metres per joint type."""

    velocity_limits: np.ndarray
    """(dof,) per-joint speed limit, rad/s or m/s, > 0."""

    def fk(self, q: np.ndarray) -> np.ndarray:
        """4x4 end-effector pose T_world_ee for joint positions ``q`` (dof,)."""
        ...

    def jacobian(self, q: np.ndarray) -> np.ndarray:
        """6 x dof geometric Jacobian at the end-effector origin, world frame, rows (v; omega)."""
        ...

    def ik(self, T_world_ee: np.ndarray, q_init: np.ndarray | None = None, *,
           position_only: bool = False) -> IKResult:
        """Joint positions that put the end-effector at ``T_world_ee`` (within joint limits)."""
        ...

    def joint_action(self, q_target: np.ndarray, gripper: float = 0.0) -> np.ndarray:
        """The bound world's action vector that drives the joints towards ``q_target``."""
        ...

    def bind(self, world: Any) -> None:
        """Attach to a world (simulation) or hardware before use."""
        ...


@runtime_checkable
class World(Component, Protocol):
    task: Task
    camera: Camera
    horizon: int
    """Maximum number of steps of one episode."""

    action_low: np.ndarray
    action_high: np.ndarray
    """Finite bounds of the action vector accepted by ``step``."""

    def reset(self, seed: int) -> Observation:
        """Start an episode; object placements are randomised by ``seed`` (same seed, same scene)."""
        ...

    def step(self, action: np.ndarray) -> Observation:
        """Apply one action (clipped to the bounds) and advance the simulation."""
        ...

    def render(self) -> RGBD:
        """The calibrated camera's current RGB-D frame."""
        ...

    def success(self) -> bool:
        """Whether the task's own success check accepts the current state."""
        ...

    def privileged_state(self) -> Mapping[str, Any]:
        """Ground-truth object state (poses, articulation), for evaluation only."""
        ...


@dataclass
class Problem:
    """Everything a solver may use.

    Fields:
        flow: the 3D object flow to follow (world frame, metres).
        observation: the current observation (after reset).
        embodiment: the robot.
        task: what to do.
        grasp: the chosen grasp, when the solver needs one.
        grasped: bool N, which flow points the grasp holds (rigid-grasp), if known.
        dynamics: the dynamics model (random shooting, trajopt's rigid-grasp model).
        world: the world, for solvers that learn by acting in it (RL).
        seed: random seed for the solver.
    """

    flow: ObjectFlow
    observation: Observation
    embodiment: Embodiment
    task: Task
    grasp: Grasp | None = None
    grasped: np.ndarray | None = None
    dynamics: DynamicsModel | None = None
    world: World | None = None
    seed: int = 0
    extras: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Policy(Protocol):
    def act(self, observation: Observation) -> np.ndarray | None:
        """The next world action, or None when the policy is done."""
        ...


@runtime_checkable
class Solver(Component, Protocol):
    def solve(self, problem: Problem) -> Policy:
        """Turn a problem into a policy (a trajectory player, a replanning loop, a network)."""
        ...


PROTOCOLS: dict[str, type] = {
    "video": VideoModel, "depth": DepthEstimator, "segmenter": Segmenter, "tracker": Tracker,
    "hand": HandDetector, "grasper": Grasper, "dynamics": DynamicsModel, "embodiment": Embodiment,
    "world": World, "solver": Solver,
}
"""Kind name -> protocol class."""

REQUIRED_METHODS: dict[str, tuple[str, ...]] = {
    "video": ("generate",), "depth": ("estimate",), "segmenter": ("segment",), "tracker": ("track",),
    "hand": ("detect",), "grasper": ("propose",), "dynamics": ("predict",),
    "embodiment": ("fk", "jacobian", "ik", "joint_action", "bind"),
    "world": ("reset", "step", "render", "success", "privileged_state"), "solver": ("solve",),
}
