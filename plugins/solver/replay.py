"""``replay`` solver: a policy that plays back a fixed action sequence.

Three sources (option ``source``):

* ``"actions"`` (default): the action vectors given inline in ``actions`` (B x A), or read from
  ``file`` (a ``.npy`` array B x A), exactly as given;
* ``"flow"``: follow the object flow's mean motion with the end-effector (an open-loop
  baseline). For every flow frame t = 1 .. T-1 the end-effector target is
  ``fk(q0).translation + mean_i(P[t, i] - P[0, i])`` over the points i visible in both frame 0
  and frame t (metres, world frame; a frame without such points repeats the previous target),
  with the orientation of ``fk(q0)``; each target is turned into joints by
  ``embodiment.ik(..., position_only=True)`` and into an action by ``embodiment.joint_action``,
  and repeated ``steps_per_frame`` times, with the gripper at option ``gripper`` (d2f's one
  convention: -1 open, the default, .. +1 closed). Frame 0 is the current state and adds no action.

The policy returns one action per ``act()`` call and None once the sequence is exhausted.
Action lengths are checked at ``solve`` time against the world (``problem.world.action_low``)
or, without a world, against the embodiment's ``joint_action`` output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from d2f_core import Manifest, ObjectFlow, Observation, Problem, hookimpl
from d2f_core.protocols import GRIPPER_CLOSED, GRIPPER_OPEN

__all__ = ["ReplayOptions", "ReplaySolver", "ReplayPolicy"]


class ReplayOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: Literal["actions", "flow"] = Field(
        default="actions",
        description='"actions": replay `actions` or `file`; "flow": move the end-effector by the flow\'s '
                    "mean visible displacement, frame by frame")
    actions: list[list[float]] | None = Field(
        default=None, description="action vectors to replay (B x A), in the world's action units")
    file: str | None = Field(default=None, description="path of a .npy file holding a B x A action array")
    steps_per_frame: int = Field(default=1, ge=1,
                                 description='source "flow": world steps per flow frame (each repeats the '
                                             "frame's action)")
    gripper: float = Field(default=GRIPPER_OPEN, ge=GRIPPER_OPEN, le=GRIPPER_CLOSED,
                           description='source "flow": gripper command passed to joint_action, d2f\'s one convention: '
                                       "-1 open (default), +1 closed (d2f_core.protocols.GRIPPER_OPEN/GRIPPER_CLOSED)")

    @model_validator(mode="after")
    def _one_source(self) -> "ReplayOptions":
        if self.source == "actions":
            if (self.actions is None) == (self.file is None):
                raise ValueError('source "actions" needs exactly one of `actions` (inline B x A list) or '
                                 "`file` (.npy B x A)")
        elif self.actions is not None or self.file is not None:
            raise ValueError('source "flow" computes its actions from the flow; remove `actions`/`file`')
        return self


class ReplayPolicy:
    """Returns ``actions[i]`` on the i-th ``act()`` call, then None."""

    def __init__(self, actions: np.ndarray, info: dict[str, Any] | None = None) -> None:
        a = np.array(actions, dtype=np.float64)
        a.flags.writeable = False
        self.actions = a
        self.info = dict(info or {})
        self.index = 0

    def __len__(self) -> int:
        return int(self.actions.shape[0])

    def act(self, observation: Observation) -> np.ndarray | None:
        if self.index >= len(self):
            return None
        out = np.array(self.actions[self.index])
        self.index += 1
        return out

    def reset(self, observation: Observation | None = None) -> None:
        """Start the replay again from the first action (an Agent: the observation is not needed)."""
        self.index = 0


def _action_dim(problem: Problem) -> int:
    world = problem.world
    if world is not None and getattr(world, "action_low", None) is not None:
        return int(np.asarray(world.action_low).size)
    q0 = np.asarray(problem.observation.joints, dtype=np.float64)
    return int(np.asarray(problem.embodiment.joint_action(q0)).size)


def _flow_targets(flow: ObjectFlow, p0: np.ndarray) -> tuple[np.ndarray, int]:
    """End-effector positions (T-1) x 3 following the flow's mean displacement; frames held."""
    pts = np.asarray(flow.points, dtype=np.float64)
    vis = np.asarray(flow.visible)
    if not vis[0].any():
        raise ValueError("problem.flow: no point is visible in frame 0; the flow carries no motion "
                         "to follow (check the segmentation mask and tracker visibility)")
    targets, held, last = [], 0, p0
    for t in range(1, flow.num_frames):
        both = vis[0] & vis[t]
        if both.any():
            last = p0 + (pts[t, both] - pts[0, both]).mean(axis=0)
        else:
            held += 1
        targets.append(last)
    return np.array(targets).reshape(-1, 3), held


class ReplaySolver:
    """See the module docstring."""

    name, kind, Options = "replay", "solver", ReplayOptions
    capabilities = frozenset({"deterministic"})
    description = ("replays given actions (inline or .npy), or moves the end-effector by the flow's "
                   "mean displacement")
    verified = "exact replay; flow mode against a synthetic ObjectFlow with known displacement"

    def __init__(self, options: ReplayOptions | None = None) -> None:
        self.options = options or ReplayOptions(actions=[])

    def _given_actions(self) -> np.ndarray:
        o = self.options
        if o.file is not None:
            path = Path(o.file)
            if not path.is_file():
                raise ValueError(f"solver.options.file: {path} not found; give a .npy file with a B x A "
                                 "action array")
            try:
                arr = np.load(path, allow_pickle=False)
            except Exception as e:  # noqa: BLE001 - any unreadable file
                raise ValueError(f"solver.options.file: {path} is not a readable .npy array ({e})") from None
            where = "solver.options.file"
        else:
            arr = np.asarray(o.actions if o.actions is not None else [], dtype=np.float64)
            where = "solver.options.actions"
        if arr.size == 0:
            arr = arr.reshape(0, 0)
        if arr.ndim != 2:
            raise ValueError(f"{where}: expected a B x A array of action vectors, got shape {arr.shape}")
        if not np.issubdtype(arr.dtype, np.number):
            raise ValueError(f"{where}: expected numbers, got dtype {arr.dtype}")
        arr = arr.astype(np.float64)
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{where}: contains NaN or inf")
        return arr

    def solve(self, problem: Problem) -> ReplayPolicy:
        if not isinstance(problem, Problem):
            raise ValueError(f"problem: expected d2f_core.Problem, got {type(problem).__name__}")
        dim = _action_dim(problem)
        if self.options.source == "flow":
            return self._solve_flow(problem, dim)
        actions = self._given_actions()
        where = "solver.options.file" if self.options.file is not None else "solver.options.actions"
        if actions.shape[0] and actions.shape[1] != dim:
            raise ValueError(f"{where}: actions have {actions.shape[1]} entries but the world/embodiment "
                             f"takes {dim}; record actions for this world")
        return ReplayPolicy(actions.reshape(-1, dim), {"source": "actions", "num_actions": int(actions.shape[0])})

    def _solve_flow(self, problem: Problem, dim: int) -> ReplayPolicy:
        emb = problem.embodiment
        flow = problem.flow
        if not isinstance(flow, ObjectFlow):
            raise ValueError(f"problem.flow: expected d2f_core.ObjectFlow, got {type(flow).__name__}")
        q = np.asarray(problem.observation.joints, dtype=np.float64)
        T0 = np.asarray(emb.fk(q), dtype=np.float64)
        targets, held = _flow_targets(flow, T0[:3, 3])
        actions, ik_failures, max_err = [], 0, 0.0
        for p in targets:
            T = T0.copy()
            T[:3, 3] = p
            res = emb.ik(T, q_init=q, position_only=True)
            ik_failures += int(not res.success)
            max_err = max(max_err, float(res.position_error))
            q = np.asarray(res.q, dtype=np.float64)
            a = np.asarray(emb.joint_action(q, self.options.gripper), dtype=np.float64)
            if a.shape != (dim,):
                raise ValueError(f"embodiment.joint_action: returned shape {a.shape} but the world takes "
                                 f"({dim},) actions; bind the embodiment to this world")
            actions.extend([a] * self.options.steps_per_frame)
        arr = np.array(actions).reshape(-1, dim)
        return ReplayPolicy(arr, {"source": "flow", "targets": targets.tolist(), "ik_failures": ik_failures,
                                  "max_ik_position_error": max_err, "frames_without_points": held})


@hookimpl
def d2f_register(register):
    register(Manifest.of(ReplaySolver))
