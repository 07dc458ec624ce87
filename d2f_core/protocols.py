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
from typing import Any, Callable, Mapping, Protocol, runtime_checkable

import numpy as np

from .types import (RGBD, Camera, DepthVideo, Grasp, HandTrack, ObjectFlow, Observation, Task, Tracks2D,
                    Video)

GRIPPER_OPEN: float = -1.0
GRIPPER_CLOSED: float = 1.0
"""The one gripper convention of every embodiment: ``joint_action(q, gripper)`` takes ``gripper`` in
[-1, 1], -1 = fully open, +1 = closed (grasping). Values in between are the embodiment's own
(documented on it): robosuite's parallel grippers integrate the sign (0 keeps the fingers where they
are), GR1's hands map the value linearly onto their actuators, Deoxys repeats the last command."""

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
                 "rigid_grasp": "held points move rigidly with the end-effector: the RigidGraspModel protocol "
                                "(attach, local, moved, grasped)",
                 "sample_actions": "sample_actions(points, n, rng): candidate actions that make contact "
                                   "(random shooting)",
                 "trainable": "fit(transitions), save(dir), load(dir): learned from data by `d2f train`",
                 "privileged_model": "knows the object's exact shape and physics (an upper bound, not learned)"},
    "estimator": {"online": "estimates from the live camera (no simulator state)",
                  "privileged": "reads the simulator's object state (a stand-in, declared)",
                  "multiview": "builds a point cloud from the world's calibrated views (observation.state['views'])"},
    "reward": {"privileged": "reads the simulator's object state (a stand-in, declared)",
               "needs_particles": "needs the estimator's current particles"},
    "embodiment": {"ik": "solves inverse kinematics", "hardware": "can drive a real robot",
                   "grasping": "a GraspingArm: grasp_to_ee, T_ee_grasp, gripper_open/closed"},
    "world": {"oracle": "can script the task done right (sim-oracle video)",
              "segmentation": "object_mask(name) from the simulator",
              "object_pose": "privileged state has object_pose: T_world_object 4x4 of the task's moving part",
              "shaped_reward": "task_reward(): the task's own shaped reward (privileged)",
              "pushes": "push(action): executes one whole planar push (contact_x, contact_y, push_dx, push_dy) "
                        "metres with its own steps (`d2f train` collects one push per transition)",
              "multiview": "observation.state['views']: calibrated RGB-D views around the scene (rendered on "
                           "first access)",
              "goal_image": "goal_image(): the camera's image of the task done (the end frame of a first-last-"
                            "frame video model)"},
    "solver": {"needs_dynamics": "uses Problem.dynamics", "needs_world": "uses Problem.world",
               "needs_grasp": "uses Problem.grasp", "needs_estimator": "uses Problem.estimator",
               "needs_reward": "uses Problem.reward", "trains": "train(env, out_dir, ...): learns by acting "
               "(`d2f train`)", "replans": "its agent replans from each observation (closed loop)"},
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
class SamplingDynamics(DynamicsModel, Protocol):
    """A dynamics model that proposes its own candidate actions (capability ``sample_actions``)."""

    def sample_actions(self, points: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` candidate actions (float n x action_dim) for particles ``points`` (N x 3, metres, world
        frame), e.g. pushes that make contact at different points and directions. Seeded by ``rng``."""
        ...


@runtime_checkable
class TrainableDynamics(DynamicsModel, Protocol):
    """A learned dynamics model (capability ``trainable``); ``d2f train`` drives it."""

    def fit(self, transitions: Mapping[str, np.ndarray], *, progress: Any = None) -> Mapping[str, float]:
        """Learn from ``transitions``: ``points`` K x N x 3, ``actions`` K x action_dim, ``next_points``
        K x N x 3 (metres, world frame). Returns metrics (e.g. ``{"loss": ...}``).

        Continues from the current parameters and optimiser state (a warm start: ``d2f train`` calls
        it once per round on all transitions so far); ``progress`` is a callable
        ``progress(done, total, metrics)`` (``total`` may be None)."""
        ...

    def save(self, directory: str) -> None:
        """Write everything ``load`` needs into ``directory`` (created if missing), the optimiser
        state included."""
        ...

    def load(self, directory: str) -> None:
        """Restore what ``save`` wrote."""
        ...


@runtime_checkable
class RigidGraspModel(DynamicsModel, Protocol):
    """Held points move rigidly with the end-effector (capability ``rigid_grasp``)."""

    def attach(self, T_world_ee: np.ndarray) -> None:
        """The end-effector pose (4x4, world frame, metres) at the grasp."""
        ...

    def grasped(self, points: np.ndarray, grasp_point: np.ndarray) -> np.ndarray:
        """bool (N,): which ``points`` (N x 3) a grasp at ``grasp_point`` (3,) holds."""
        ...

    def local(self, points: np.ndarray, T_world_ee: np.ndarray | None = None) -> np.ndarray:
        """Points (N x 3, world) in the end-effector frame at the grasp."""
        ...

    def moved(self, local: np.ndarray, T_world_ee: np.ndarray) -> np.ndarray:
        """Held points (N x 3, end-effector frame) for poses K x 4 x 4 -> K x N x 3 world."""
        ...


@runtime_checkable
class StateEstimator(Component, Protocol):
    """Where the flow's particles are now (kind ``estimator``)."""

    def reset(self, observation: Observation, flow: ObjectFlow) -> None:
        """Start an episode: ``flow.points[0]`` (N x 3, metres, world frame) are the particles at
        ``observation``."""
        ...

    def estimate(self, observation: Observation) -> tuple[np.ndarray, np.ndarray]:
        """(particles float32 N x 3 metres world frame, visible bool N) for ``observation``; the same N
        and order as the flow's points."""
        ...


@runtime_checkable
class Reward(Component, Protocol):
    """A per-step reward (kind ``reward``)."""

    def reset(self, flow: ObjectFlow, observation: Observation) -> None:
        """Start an episode following ``flow`` from ``observation``."""
        ...

    def __call__(self, observation: Observation, particles: np.ndarray | None, *,
                 visible: np.ndarray | None = None) -> tuple[float, Mapping[str, Any]]:
        """(reward, info) for ``observation``; ``particles`` (N x 3, metres, world frame) are the
        estimator's current particles and ``visible`` (bool N) which of them it sees now (both None
        when no estimator is configured; ``visible`` None: all)."""
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
class GraspingArm(Embodiment, Protocol):
    """An arm with a gripper (capability ``grasping``): what grasping solvers use instead of probing.

    ``gripper_open`` / ``gripper_closed`` are :data:`GRIPPER_OPEN` / :data:`GRIPPER_CLOSED`.

    Optional extras (not part of the protocol; solvers use them when present, else fall back):
    ``fk_jacobian(q)`` -> (T, J), also batched over q N x dof -> (N x 4 x 4, N x 6 x dof), one FK pass
    (else ``fk`` and ``jacobian`` per row); ``ik_settings`` (an object with ``position_tolerance`` m and
    ``rotation_tolerance`` rad: the IK success thresholds, else 1e-3 m / 1e-2 rad); ``T_world_base``
    (4x4, world frame: the robot base, a hint for calibrating other IK models, else identity)."""

    T_ee_grasp: np.ndarray
    """4x4 pose of the grasp frame in the end-effector frame (the approach axis is its z)."""

    gripper_open: float
    gripper_closed: float

    def grasp_to_ee(self, T_world_grasp: np.ndarray, width: float) -> np.ndarray:
        """The end-effector pose (4x4, world) that puts the fingers on a grasp of ``width`` metres."""
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

    control_freq: float
    """Steps per simulated second, Hz (the rollout video's frame rate)."""

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

    def describe_state(self) -> str:
        """One line on the task's state against its success check, e.g. "door at 0.12 rad (success
        needs > 0.3)": the failure reason of an episode that ends without success."""
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
        estimator: where the flow's particles are now (closed-loop solvers).
        reward: the per-step reward (RL).
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
    estimator: StateEstimator | None = None
    reward: Reward | None = None
    world: World | None = None
    seed: int = 0
    extras: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Agent(Protocol):
    """What acts in an episode: a trajectory player, a replanning loop, a trained network."""

    def reset(self, observation: Observation) -> None:
        """Start an episode from ``observation`` (the world was just reset)."""
        ...

    def act(self, observation: Observation) -> np.ndarray | None:
        """The next world action, or None when the agent is done."""
        ...


Policy = Agent
"""Former name of :class:`Agent`."""


@runtime_checkable
class Solver(Component, Protocol):
    def solve(self, problem: Problem) -> Agent:
        """Turn a problem into an agent (a trajectory player, a replanning loop, a network).

        A solver declares, in its manifest's ``uses`` (and, by convention, a class attribute ``uses``
        that ``Manifest.of`` reads and the conformance checks honour), the acting kinds it can use
        (``dynamics``, ``estimator``, ``reward``) mapped to the capability each must have (None: any);
        configuring one it cannot use is an error before anything runs."""
        ...


@runtime_checkable
class TrainingSolver(Solver, Protocol):
    """A solver that learns by acting (capability ``trains``); ``d2f train`` drives it."""

    def train(self, env: Any, out_dir: str, *, resume: bool, budget: int, checkpoint_every: int, seed: int,
              progress: Callable[[int, int, Mapping[str, float]], None] | None = None,
              log: Callable[[int, Mapping[str, float]], None] | None = None) -> Mapping[str, float]:
        """Learn in ``env`` (a FlowEnv) for ``budget`` environment steps in all, counting those done
        before a resume. Write atomic checkpoints into ``out_dir`` every ``checkpoint_every`` steps
        holding everything needed to continue (weights, optimiser, replay buffer, RNG, step counter);
        with ``resume`` continue from the newest one (start afresh when there is none). Call
        ``progress(step, budget, metrics)`` as it goes and ``log(step, metrics)`` per log row (a step
        logged again after a resume replaces the rows from that step on). Leave what ``solve`` needs
        to act with the trained policy in ``out_dir``. Returns the final metrics."""
        ...


@dataclass(frozen=True)
class KindSpec:
    """One component kind: the single table every kind-dependent part of dream2flow reads (registry,
    config, conformance, CLI). Adding a kind is one row here (plus its conformance checks).

    Fields:
        name: the kind (``tracker: {plugin: ...}`` in configs, ``Manifest.kind``).
        protocol: its typing.Protocol.
        methods: methods a built component must have.
        summary: one line for docs and ``d2f plugins``.
        acting: used by a solver (dynamics, estimator, reward): the solver's manifest must declare it
            in ``uses``, or configuring it is an error.
        aliases: other spellings in module paths (``grasp`` -> ``grasper``), for load-failure display.
    """

    name: str
    protocol: type
    methods: tuple[str, ...]
    summary: str
    acting: bool = False
    aliases: tuple[str, ...] = ()


KIND_SPECS: tuple[KindSpec, ...] = (
    KindSpec("video", VideoModel, ("generate",), "imagines the task as a video"),
    KindSpec("depth", DepthEstimator, ("estimate",), "per-frame depth of the video"),
    KindSpec("segmenter", Segmenter, ("segment",), "object mask from text (and points)", aliases=("segment",)),
    KindSpec("tracker", Tracker, ("track",), "2D point tracks with visibility", aliases=("track",)),
    KindSpec("hand", HandDetector, ("detect",), "hand keypoints (thumb for grasp choice)"),
    KindSpec("grasper", Grasper, ("propose",), "grasp candidates on the object", aliases=("grasp",)),
    KindSpec("dynamics", DynamicsModel, ("predict",), "predicts where the object's points go", acting=True),
    KindSpec("estimator", StateEstimator, ("reset", "estimate"), "where the flow's particles are now",
             acting=True),
    KindSpec("reward", Reward, ("reset", "__call__"), "per-step reward of an episode", acting=True,
             aliases=("rewards",)),
    KindSpec("embodiment", Embodiment, ("fk", "jacobian", "ik", "joint_action", "bind"), "the robot"),
    KindSpec("world", World, ("reset", "step", "render", "success", "privileged_state", "describe_state"),
             "a simulated or real environment"),
    KindSpec("solver", Solver, ("solve",), "turns the flow into an agent", aliases=("solve",)),
)

KINDS: tuple[str, ...] = tuple(k.name for k in KIND_SPECS)
"""The component kinds, in pipeline order. Plugin manifests name one of these."""

ACTING_KINDS: tuple[str, ...] = tuple(k.name for k in KIND_SPECS if k.acting)
"""Kinds a solver must declare in its manifest's ``uses`` to be configured with it."""

PROTOCOLS: dict[str, type] = {k.name: k.protocol for k in KIND_SPECS}
"""Kind name -> protocol class."""

REQUIRED_METHODS: dict[str, tuple[str, ...]] = {k.name: k.methods for k in KIND_SPECS}
"""Kind name -> methods a built component must have."""

assert set(CAPABILITIES) - {"*"} <= set(KINDS), "CAPABILITIES names an unknown kind"
