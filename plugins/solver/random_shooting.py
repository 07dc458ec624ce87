"""``random-shooting`` solver: model-predictive pushing along the 3D object flow (the paper's Push-T planner).

``solve(problem)`` returns a :class:`RandomShootingAgent` that replans before the first push and after
every push. One replan:

1. **Where the object is now**: ``problem.estimator.estimate(observation)`` gives the particles P
   (N x 3, metres, world frame; the flow's N points in the flow's order) and which are visible.
   The agent resets the estimator in ``reset(observation)`` and calls ``estimate`` on every
   ``act()`` (an online tracker sees every frame), using the latest estimate when it replans.
2. **Where it should be next**: t* is the flow step whose points are nearest P (mean per-point
   distance over the points visible both in that step and now), moved on over the steps right after
   it that are as near within ``t_star_tolerance`` (1 mm: a flow that rests at its start, while the
   hand approaches, would otherwise hold t* + L at rest and the object with it); the subgoal is
   the flow's points at step min(t* + L, T - 1), L = ``lookahead`` (20, the paper's).
3. **Random shooting**: the dynamics model proposes ``num_samples`` candidate pushes
   (``sample_actions(P_visible, n, rng)``, ``rng`` seeded from ``seed`` or ``problem.seed`` and
   re-seeded by ``reset``); all of them are predicted in **one** batched ``predict(P_visible,
   actions)``; a candidate's score is the mean distance (metres) of its predicted particles to the
   subgoal over the points visible now and at the subgoal step. The lowest score wins (the first
   on ties) unless the embodiment cannot reach its waypoints, then the next best.
4. **Execution**: the push becomes a few waypoints of the end-effector tip (below), each turned into
   a world action through the embodiment (position-only ``ik`` from the current joints, then
   ``joint_action``). ``act()`` returns one world action per call from that queue, repeating a
   waypoint's action until the tip is within ``waypoint_tolerance`` of it, stops moving (blocked,
   e.g. resting on the object) or ``max_waypoint_steps`` steps passed. When the queue is empty it
   replans.

The agent stops (``act`` returns None) when the estimated particles are within ``goal_tolerance``
of the flow's final step (mean distance over visible points), after ``max_pushes`` pushes, after
``max_steps`` world actions (default: the problem's world horizon), or when no particle is visible.

**Push actions.** The dynamics model's actions must be planar pushes ``(contact_x, contact_y,
push_dx, push_dy)`` in metres, world frame (``action_dim`` 4, as ``heuristic``): the pusher's tip
meets the object at the contact point and moves by (push_dx, push_dy) in the table plane. With
``z_top`` the particles' top (95th percentile of the visible particles' z), ``d`` the unit push
direction and ``s = contact - backoff * d`` the start, the tip's waypoints (world frame, metres) are:

====  ======================================  ==============================================
1     (tip x, tip y, z_travel)                lift straight up, only when the tip is below z_travel
2     (s_x, s_y, z_travel)                    travel above the start, clear of the object
3     (s_x, s_y, z_push)                      descend behind the contact point
4     contact + (push_dx, push_dy), z_push     push
5     (end x, end y, z_travel)                lift
====  ======================================  ==============================================

``z_travel = z_top + travel_height``, ``z_push = z_top - push_depth``. For ``tabletop-2d`` with the
``point-mass`` pusher (a 4 cm block) that is travel 3 cm above the block and pushing at half its
height.

The plan report (``agent.info``, written to plan.json; the run's result.json names
``info["dynamics"]``) holds the solver, the dynamics model's name, the estimator's, the options,
and, as the episode runs, the number of replans, each push's best score, t* history and the
reason the agent stopped.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from d2f_core import Manifest, ObjectFlow, hookimpl
from d2f_core.protocols import Problem

__all__ = ["RandomShootingOptions", "RandomShootingSolver", "RandomShootingAgent", "nearest_flow_step",
           "score_candidates", "push_waypoints"]


class RandomShootingOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    num_samples: int = Field(default=512, ge=1, le=100_000,
                             description="candidate pushes sampled and predicted per replan")
    lookahead: int = Field(default=20, ge=0, le=10_000,
                           description="L: the subgoal is the flow step min(t* + L, T - 1) (paper: 20)")
    goal_tolerance: float = Field(default=0.005, gt=0.0,
                                  description="stop when the particles' mean distance to the flow's final step "
                                              "is at most this, metres")
    max_pushes: int = Field(default=40, ge=1, le=100_000, description="stop after this many pushes")
    travel_height: float = Field(default=0.03, gt=0.0, le=1.0,
                                 description="the tip travels between pushes this far above the particles' top, "
                                             "metres")
    push_depth: float = Field(default=0.02, ge=0.0, le=1.0,
                              description="the tip pushes this far below the particles' top, metres")
    backoff: float = Field(default=0.01, ge=0.0, le=0.5,
                           description="the tip descends this far behind the contact point (against the push "
                                       "direction), metres")
    t_star_tolerance: float = Field(default=0.001, ge=0.0,
                                    description="flow steps right after the nearest one whose mean distance is "
                                                "within this of it count as reached too (skips a flow's rests), "
                                                "metres")
    waypoint_tolerance: float = Field(default=0.002, gt=0.0,
                                      description="a waypoint is reached when the tip is this close, metres")
    max_waypoint_steps: int = Field(default=15, ge=1,
                                    description="world steps spent on one waypoint at most before the next")
    stall_distance: float = Field(default=0.0005, ge=0.0,
                                  description="a tip that moved less than this in a step (twice in a row) is "
                                              "blocked: go on to the next waypoint, metres")
    ik_tolerance: float = Field(default=0.001, gt=0.0,
                                description="a waypoint the embodiment's IK misses by more than this (metres) is "
                                            "unreachable; the push is replaced by the next best")
    max_steps: int | None = Field(default=None, ge=1,
                                  description="stop after this many world actions (None: the problem's world "
                                              "horizon when it has a world, else no limit)")
    seed: int | None = Field(default=None, description="seed of the candidate sampling (None: the run's seed)")


# --------------------------------------------------------------------------- pure functions


def nearest_flow_step(flow_points: np.ndarray, flow_visible: np.ndarray, particles: np.ndarray,
                      visible: np.ndarray, tolerance: float = 0.0) -> tuple[int, np.ndarray]:
    """(t*, distances T): the flow step whose points are nearest ``particles``.

    ``distances[t]`` is the mean distance (metres) between flow step t's points and the particles
    over the points visible in both (inf where none is); t* is its argmin (the earliest on ties),
    moved on over the steps right after it whose distance is within ``tolerance`` (metres) of the
    minimum: a flow that rests for a while (the hand approaching before the object moves) is then
    past, not a place where t* + L stays at rest. ``flow_points`` T x N x 3, ``flow_visible`` T x N,
    ``particles`` N x 3, ``visible`` N.
    """
    both = flow_visible & visible[None, :]
    d = np.linalg.norm(flow_points - particles[None], axis=-1)  # T x N
    count = both.sum(axis=1)
    total = np.where(both, d, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), np.inf)
    t = int(np.argmin(mean))
    while t + 1 < len(mean) and mean[t + 1] <= mean.min() + tolerance:
        t += 1
    return t, mean


def score_candidates(predicted: np.ndarray, subgoal: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Scores B (metres): mean distance of each candidate's predicted particles (B x M x 3) to the
    subgoal points (M x 3) over ``mask`` (M, bool; at least one True). Lower is better."""
    d = np.linalg.norm(predicted[:, mask].astype(np.float64) - subgoal[mask][None], axis=-1)
    return d.mean(axis=1)


def push_waypoints(action: np.ndarray, tip: np.ndarray, z_travel: float, z_push: float,
                   backoff: float) -> list[np.ndarray]:
    """Tip positions (world frame, metres) that execute the push ``action`` = (contact_x, contact_y,
    push_dx, push_dy) from the tip at ``tip`` (3,): the table in the module docstring."""
    cx, cy, dx, dy = (float(v) for v in action)
    length = math.hypot(dx, dy)
    ux, uy = (dx / length, dy / length) if length > 1e-12 else (0.0, 0.0)
    sx, sy = cx - backoff * ux, cy - backoff * uy
    ex, ey = cx + dx, cy + dy
    out = []
    if tip[2] < z_travel - 1e-6:
        out.append(np.array([tip[0], tip[1], z_travel]))
    out += [np.array([sx, sy, z_travel]), np.array([sx, sy, z_push]), np.array([ex, ey, z_push]),
            np.array([ex, ey, z_travel])]
    return out


# --------------------------------------------------------------------------- the agent


class RandomShootingAgent:
    """The MPC agent of :class:`RandomShootingSolver` (module docstring). ``info`` is its plan report."""

    executable = True
    refused = None

    def __init__(self, problem: Problem, options: RandomShootingOptions, solver_name: str) -> None:
        self.options = options
        self.flow: ObjectFlow = problem.flow
        self.dynamics = problem.dynamics
        self.estimator = problem.estimator
        self.embodiment = problem.embodiment
        self.seed = int(options.seed if options.seed is not None else problem.seed)
        horizon = getattr(problem.world, "horizon", None) if problem.world is not None else None
        self.max_steps = options.max_steps if options.max_steps is not None else (
            int(horizon) if isinstance(horizon, (int, np.integer)) and horizon > 0 else None)
        self._fp = np.asarray(self.flow.points, dtype=np.float64)  # T x N x 3 (a copy: never written)
        self._fv = np.asarray(self.flow.visible, dtype=bool)
        T = self._fp.shape[0]
        self.info: dict[str, Any] = {
            "solver": solver_name,
            "dynamics": str(getattr(self.dynamics, "name", type(self.dynamics).__name__)),
            "estimator": str(getattr(self.estimator, "name", type(self.estimator).__name__)),
            "motion": "3D object flow (random-shooting MPC, replans after every push)",
            "flow_steps": T, "lookahead": options.lookahead, "num_samples": options.num_samples,
            "goal_tolerance_m": options.goal_tolerance, "max_pushes": options.max_pushes, "max_steps": self.max_steps,
            "seed": self.seed,
        }
        self._start_episode()

    # ------------------------------------------------------------------ episode state
    def _start_episode(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        self.queue: list[tuple[np.ndarray, np.ndarray]] = []  # (world action, tip target)
        self.pushes = 0
        self.steps = 0
        self.done = False
        self._on_waypoint = 0
        self._stalls = 0
        self._last_tip: np.ndarray | None = None
        self.history: list[dict[str, Any]] = []
        self.info.update(replans=0, pushes=0, t_star=[], best_scores_m=[], stopped=None, plan_seconds=0.0,
                         history=self.history)

    def reset(self, observation: Any) -> None:
        """New episode: re-seed, forget the queue, and start the estimator on ``observation``."""
        self._start_episode()
        self.estimator.reset(observation, self.flow)

    # ------------------------------------------------------------------ acting
    def act(self, observation: Any) -> np.ndarray | None:
        """The next world action, or None when done (module docstring)."""
        if self.done:
            return None
        if self.max_steps is not None and self.steps >= self.max_steps:
            self._stop(f"max_steps ({self.max_steps}) reached after {self.pushes} pushes")
            return None
        q = np.asarray(observation.joints, dtype=np.float64)
        tip = np.asarray(self.embodiment.fk(q), dtype=np.float64)[:3, 3]
        P, vis = self._estimate(observation)  # every step: an online estimator sees every frame
        self._advance_queue(tip)
        if not self.queue:
            if not self._replan(q, tip, P, vis):
                return None
        action, _ = self.queue[0]
        self._on_waypoint += 1
        self._last_tip = tip
        self.steps += 1
        return np.array(action, dtype=np.float64)

    def _advance_queue(self, tip: np.ndarray) -> None:
        """Drop waypoints that are reached, blocked, or out of steps."""
        o = self.options
        while self.queue:
            _, target = self.queue[0]
            reached = float(np.linalg.norm(tip - target)) <= o.waypoint_tolerance
            if self._last_tip is not None and self._on_waypoint > 0 and not reached:
                moved = float(np.linalg.norm(tip - self._last_tip))
                self._stalls = self._stalls + 1 if moved < o.stall_distance else 0
            blocked = self._stalls >= 2
            if reached or blocked or self._on_waypoint >= o.max_waypoint_steps:
                self.queue.pop(0)
                self._on_waypoint = 0
                self._stalls = 0
                continue
            break

    def _stop(self, reason: str) -> bool:
        self.done = True
        self.info["stopped"] = reason
        return False

    def _estimate(self, observation: Any) -> tuple[np.ndarray, np.ndarray]:
        """The estimator's particles (float64 N x 3, metres, world) and visible (N; finite ones only)."""
        particles, visible = self.estimator.estimate(observation)
        P = np.asarray(particles, dtype=np.float64)
        vis = np.asarray(visible, dtype=bool)
        N = self._fp.shape[1]
        if P.shape != (N, 3) or vis.shape != (N,):
            raise ValueError(f"estimator: {self.info['estimator']!r} returned particles {P.shape} and visible "
                             f"{vis.shape}; expected ({N}, 3) and ({N},), the flow's points in its order")
        return P, vis & np.all(np.isfinite(P), axis=1)

    def _replan(self, q: np.ndarray, tip: np.ndarray, P: np.ndarray, vis: np.ndarray) -> bool:
        """Pick the best push for particles ``P`` (visible ``vis``), fill the queue; False (and done) when the
        agent stops."""
        o = self.options
        t0 = time.perf_counter()
        if not vis.any():
            return self._stop("no particle visible")
        T = self._fp.shape[0]
        t_star, dist = nearest_flow_step(self._fp, self._fv, P, vis, o.t_star_tolerance)
        final = dist[T - 1]
        entry: dict[str, Any] = {"push": self.pushes, "step": self.steps, "t_star": t_star,
                                 "to_final_m": round(float(final), 5) if math.isfinite(final) else None}
        self.info["t_star"].append(t_star)
        if math.isfinite(final) and final <= o.goal_tolerance:
            self.history.append(entry)
            return self._stop(f"particles within {o.goal_tolerance} m of the flow's final step "
                              f"({final:.4f} m)")
        if self.pushes >= o.max_pushes:
            self.history.append(entry)
            return self._stop(f"max_pushes ({o.max_pushes}) reached, {final:.4f} m from the flow's final step")
        sub_t = min(t_star + o.lookahead, T - 1)
        idx = np.nonzero(vis)[0]
        pts = P[idx]
        mask = self._fv[sub_t, idx]
        if not mask.any():  # no point visible now is visible at the subgoal step: aim at the final step's
            mask = self._fv[T - 1, idx]
            sub_t = T - 1
        if not mask.any():
            self.history.append(entry)
            return self._stop("no particle visible now is visible in the flow's subgoal or final step")
        subgoal = self._fp[sub_t, idx]
        actions = np.asarray(self.dynamics.sample_actions(pts.astype(np.float32), o.num_samples, self.rng),
                             dtype=np.float64)
        if actions.ndim != 2 or actions.shape[0] != o.num_samples or actions.shape[1] != 4:
            raise ValueError(f"dynamics: {self.info['dynamics']!r}.sample_actions returned shape {actions.shape}; "
                             f"expected ({o.num_samples}, 4) pushes (contact_x, contact_y, push_dx, push_dy)")
        predicted = np.asarray(self.dynamics.predict(pts.astype(np.float32), actions))
        if predicted.shape != (actions.shape[0], pts.shape[0], 3):
            raise ValueError(f"dynamics: {self.info['dynamics']!r}.predict returned shape {predicted.shape}; "
                             f"expected {(actions.shape[0], pts.shape[0], 3)}")
        scores = score_candidates(predicted, subgoal, mask)
        now = float(np.linalg.norm(pts[mask] - subgoal[mask], axis=-1).mean())
        z_top = float(np.percentile(pts[:, 2], 95))
        z_travel, z_push = z_top + o.travel_height, z_top - o.push_depth
        order = np.argsort(scores, kind="stable")
        chosen = None
        for rank, b in enumerate(order):
            if not np.isfinite(scores[b]):
                break
            plan = self._waypoint_actions(push_waypoints(actions[b], tip, z_travel, z_push, o.backoff), q)
            if plan is not None:
                chosen = (rank, int(b), plan)
                break
        if chosen is None:
            self.history.append(entry)
            return self._stop("no sampled push is reachable by the embodiment")
        rank, b, plan = chosen
        self.queue = plan
        self._on_waypoint = 0
        self._stalls = 0
        self.pushes += 1
        seconds = time.perf_counter() - t0
        entry.update(subgoal_t=sub_t, score_now_m=round(now, 5), best_score_m=round(float(scores[b]), 5),
                     rank=rank, action=[round(float(v), 5) for v in actions[b]], seconds=round(seconds, 4))
        self.history.append(entry)
        self.info["best_scores_m"].append(entry["best_score_m"])
        self.info["replans"] += 1
        self.info["pushes"] = self.pushes
        self.info["plan_seconds"] = round(self.info["plan_seconds"] + seconds, 4)
        return True

    # ------------------------------------------------------------------ pictures
    def episode_pictures(self, out_dir: Any, *, frames: np.ndarray, frame_steps: np.ndarray, fps: float,
                         camera: Any = None, trace: list[dict[str, Any]] | None = None) -> dict[str, str]:
        """After an episode: ``rollout_subgoal.mp4`` (the rollout with the current subgoal's flow points in
        green and the flow's last step in white, projected with ``camera``) and ``errors_per_push.png``
        (before each push: the object's true position and yaw error to the goal when the world's
        privileged state has ``pose_error`` [metres, degrees], and the agent's own estimate, the mean
        distance of its particles to the flow's last step). Returns {picture name: file name}."""
        from pathlib import Path

        out, made = Path(out_dir), {}
        replans = [h for h in self.history if "step" in h]
        if camera is not None and len(frames) and replans:
            drawn = _draw_subgoals(frames, frame_steps, replans, self._fp, self._fv, camera)
            try:
                import imageio.v2 as iio

                iio.mimwrite(out / "rollout_subgoal.mp4", list(drawn), fps=max(1.0, float(fps)), codec="libx264",
                             macro_block_size=1, quality=8)
                made["rollout_subgoal"] = "rollout_subgoal.mp4"
            except Exception:  # noqa: BLE001 - no movie writer: a contact sheet is still written below
                pass
            idx = np.linspace(0, len(drawn) - 1, min(8, len(drawn))).astype(int)
            sheet = np.concatenate([np.concatenate(list(drawn[idx[:4]]), 1), np.concatenate(
                list(drawn[idx[4:8]]) + [np.zeros_like(drawn[0])] * (4 - len(idx[4:8])), 1)], 0) \
                if len(idx) > 4 else np.concatenate(list(drawn[idx]), 1)
            try:
                import imageio.v2 as iio

                iio.imwrite(out / "rollout_subgoal.png", sheet[::2, ::2])
                made["rollout_subgoal_sheet"] = "rollout_subgoal.png"
            except ImportError:
                pass
        if self.history and _plot_errors(out / "errors_per_push.png", self.history, trace or []):
            made["errors_per_push"] = "errors_per_push.png"
        return made

    def _waypoint_actions(self, waypoints: list[np.ndarray], q: np.ndarray
                          ) -> list[tuple[np.ndarray, np.ndarray]] | None:
        """(world action, reached tip position) per waypoint, or None if one is out of reach."""
        emb = self.embodiment
        R = np.asarray(emb.fk(q), dtype=np.float64)[:3, :3]
        out = []
        q_prev = q
        for w in waypoints:
            T = np.eye(4)
            T[:3, :3] = R
            T[:3, 3] = w
            res = emb.ik(T, q_prev, position_only=True)
            if res.position_error > self.options.ik_tolerance:
                return None
            q_prev = np.asarray(res.q, dtype=np.float64)
            out.append((np.asarray(emb.joint_action(q_prev), dtype=np.float64),
                        np.asarray(emb.fk(q_prev), dtype=np.float64)[:3, 3]))
        return out


# --------------------------------------------------------------------------- pictures


def _draw_subgoals(frames: np.ndarray, frame_steps: np.ndarray, replans: list[dict[str, Any]], fp: np.ndarray,
                   fv: np.ndarray, camera: Any) -> np.ndarray:
    """Copies of ``frames`` with the subgoal in force at each frame's step (green) and the flow's last step
    (white) drawn as 2-pixel dots."""
    out = np.array(frames, copy=True)
    H, W = out.shape[1:3]
    T = fp.shape[0]
    steps = [int(h["step"]) for h in replans]

    def dots(img: np.ndarray, pts: np.ndarray, colour: tuple[int, int, int]) -> None:
        if not len(pts):
            return
        uv, z = camera.project(pts)
        ok = (z > 0) & np.all(np.isfinite(uv), axis=1)
        for x, y in np.round(uv[ok]).astype(int):
            if 1 <= x < W - 1 and 1 <= y < H - 1:
                img[y - 1:y + 1, x - 1:x + 1] = colour

    final = fp[T - 1][fv[T - 1]]
    for i, k in enumerate(np.asarray(frame_steps, dtype=int)):
        dots(out[i], final, (255, 255, 255))
        j = int(np.searchsorted(steps, k, side="right")) - 1
        if j >= 0 and replans[j].get("subgoal_t") is not None:
            t = int(replans[j]["subgoal_t"])
            dots(out[i], fp[t][fv[t]], (40, 230, 60))
    return out


def _plot_errors(path: Any, history: list[dict[str, Any]], trace: list[dict[str, Any]]) -> bool:
    """errors_per_push.png (see RandomShootingAgent.episode_pictures); False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    by_step = {int(s["step"]): s for s in trace if "step" in s}
    pushes = [h["push"] for h in history]
    est = [100 * h["to_final_m"] if h.get("to_final_m") is not None else np.nan for h in history]
    true_d, true_a = [], []
    for h in history:
        pe = by_step.get(int(h.get("step", -1)), {}).get("pose_error")
        true_d.append(100 * pe[0] if pe else np.nan)
        true_a.append(pe[1] if pe else np.nan)
    has_true = np.isfinite(true_d).any()
    fig, axes = plt.subplots(1, 2 if has_true else 1, figsize=(9 if has_true else 5, 3.4), squeeze=False)
    ax = axes[0, 0]
    if has_true:
        ax.plot(pushes, true_d, "o-", label="true position error (world)")
        ax.axhline(2.0, color="grey", ls="--", lw=1, label="2 cm")
    ax.plot(pushes, est, "s--", ms=3, label="particles to flow's last step (estimate)")
    ax.set_xlabel("push")
    ax.set_ylabel("cm")
    ax.set_title("position")
    ax.legend(fontsize=7)
    if has_true:
        ax = axes[0, 1]
        ax.plot(pushes, true_a, "o-", color="tab:red", label="true yaw error (world)")
        ax.axhline(15.0, color="grey", ls="--", lw=1, label="15°")
        ax.set_xlabel("push")
        ax.set_ylabel("degrees")
        ax.set_title("angle")
        ax.legend(fontsize=7)
    fig.suptitle("before each push (replan)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


# --------------------------------------------------------------------------- the solver


class RandomShootingSolver:
    """``solve(problem) -> RandomShootingAgent`` (module docstring)."""

    name, kind, Options = "random-shooting", "solver", RandomShootingOptions
    capabilities = frozenset({"replans", "needs_dynamics", "needs_estimator", "deterministic"})
    uses = {"dynamics": "sample_actions", "estimator": None}
    """Acting components it can use (its manifest's ``uses``): a dynamics model with ``sample_actions``, any
    estimator."""
    description = ("random-shooting MPC along the 3D object flow: sampled pushes scored by one batched "
                   "dynamics prediction against the subgoal t*+L, replans after every push")
    verified = ("argmin of the batch scores, one predict per replan; reaches a reachable subgoal; "
                "tabletop_push seeds 0-9")

    def __init__(self, options: RandomShootingOptions | None = None) -> None:
        self.options = options or RandomShootingOptions()

    def solve(self, problem: Problem) -> RandomShootingAgent:
        flow = problem.flow
        if not isinstance(flow, ObjectFlow):
            raise ValueError(f"flow: expected a d2f_core.ObjectFlow (points T x N x 3, visible T x N), got "
                             f"{type(flow).__name__}; wrap arrays with ObjectFlow(points=..., visible=...)")
        dyn, est, emb = problem.dynamics, problem.estimator, problem.embodiment
        if dyn is None:
            raise ValueError(f"dynamics: solver {self.name} predicts pushes with a dynamics model; configure one "
                             "with capability 'sample_actions' (e.g. `dynamics: {plugin: heuristic}`)")
        dname = getattr(dyn, "name", type(dyn).__name__)
        if not callable(getattr(dyn, "sample_actions", None)) or not callable(getattr(dyn, "predict", None)):
            raise ValueError(f"dynamics: solver {self.name} needs predict() and sample_actions(points, n, rng); "
                             f"{dname!r} lacks sample_actions (capability 'sample_actions'); use e.g. `dynamics: "
                             "{plugin: heuristic}`")
        if getattr(dyn, "action_dim", None) != 4:
            raise ValueError(f"dynamics: solver {self.name} executes planar pushes (contact_x, contact_y, push_dx, "
                             f"push_dy) metres; {dname!r} has action_dim {getattr(dyn, 'action_dim', None)!r} "
                             f"({', '.join(getattr(dyn, 'action_names', ()) or ())}); use a push model such as "
                             "`dynamics: {plugin: heuristic}`")
        if est is None or not callable(getattr(est, "estimate", None)) or not callable(getattr(est, "reset", None)):
            raise ValueError(f"estimator: solver {self.name} replans from the object's current particles; configure "
                             "an estimator (e.g. `estimator: {plugin: sim-particles}`)")
        if emb is None or not all(callable(getattr(emb, m, None)) for m in ("fk", "ik", "joint_action")):
            raise ValueError(f"embodiment: solver {self.name} moves the end-effector tip with fk, ik and "
                             "joint_action; configure an embodiment (e.g. `embodiment: {plugin: point-mass}`)")
        if flow.num_frames < 1 or flow.num_points < 1 or not flow.visible.any():
            raise ValueError(f"flow: has {flow.num_frames} steps x {flow.num_points} points and "
                             f"{int(flow.visible.sum())} visible; random shooting needs visible points to follow")
        return RandomShootingAgent(problem, self.options, self.name)


@hookimpl
def d2f_register(register):
    register(Manifest.of(RandomShootingSolver))
