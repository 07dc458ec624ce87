"""Checks of solvers (d2f_core.protocols.Solver), on a Problem from ``env.problem_factory``
(default: :func:`d2f_conformance.doubles.default_problem`)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from d2f_core.protocols import Problem

from ..results import CheckFailed, CheckSkipped
from ..scenes import CheckEnv
from .common import Check, Snapshot, call, common_checks, expect_value_error

NEEDS = {"needs_dynamics": "dynamics", "needs_world": "world", "needs_grasp": "grasp",
         "needs_estimator": "estimator", "needs_reward": "reward"}
NO_WORLD_STEPS = 200  # actions read without a world (no horizon known)


def _problem(component: Any, env: CheckEnv) -> Problem:
    factory = env.problem_factory
    if factory is None:
        from ..doubles import default_problem
        factory = default_problem
    problem = factory(env)
    if not isinstance(problem, Problem):
        raise CheckSkipped(f"problem_factory returned {type(problem).__name__}, not d2f_core.Problem")
    uses = getattr(component, "uses", None)
    if isinstance(uses, dict):  # hand the solver only the acting components it declares it can use
        drop = {}
        for kind in ("dynamics", "estimator", "reward"):
            comp = getattr(problem, kind)
            need = uses.get(kind)
            if comp is not None and (kind not in uses or (need and need not in getattr(comp, "capabilities", ()))):
                drop[kind] = None
        problem = replace(problem, **drop) if drop else problem
    for cap, attr in NEEDS.items():
        if cap in getattr(component, "capabilities", ()) and getattr(problem, attr) is None:
            raise CheckSkipped(f"declares {cap!r} but the check problem has no {attr}; pass "
                               f"check_plugin(..., problem_factory=...) returning a Problem with one")
    return problem


def _solve(component: Any, problem: Problem) -> Any:
    agent = call("solve(problem)", component.solve, problem)
    lacking = [m for m in ("reset", "act") if not callable(getattr(agent, m, None))]
    if lacking:
        raise CheckFailed(f"solve() returned {type(agent).__name__} without {' and '.join(lacking)}(observation); "
                          "return a d2f_core.Agent: reset(observation) starts an episode, act(observation) gives "
                          "the next action or None when done")
    return agent


def _rollout(component: Any, problem: Problem) -> tuple[list[np.ndarray], int | None]:
    """Actions the policy gives while stepping problem.world (reset to problem.seed) until None."""
    policy = _solve(component, problem)
    world = problem.world
    horizon = int(getattr(world, "horizon", NO_WORLD_STEPS)) if world is not None else None
    obs = call(f"world.reset({problem.seed})", world.reset, problem.seed) if world is not None else problem.observation
    call("agent.reset(observation)", policy.reset, obs)
    actions: list[np.ndarray] = []
    for i in range((horizon if horizon is not None else NO_WORLD_STEPS) + 1):
        a = call(f"policy.act(observation) at step {i}", policy.act, obs)
        if a is None:
            break
        try:
            a = np.array(a, dtype=np.float64)
        except Exception as e:  # noqa: BLE001
            raise CheckFailed(f"policy.act() returned {type(a).__name__} at step {i}, not a numeric action "
                              f"({e}); return a 1-D float array or None") from None
        actions.append(a)
        if world is not None:
            obs = call(f"world.step(action {i})", world.step, a)
    return actions, horizon


def check_solver_returns_policy(component: Any, env: CheckEnv) -> None:
    problem = _problem(component, env)
    policy = _solve(component, problem)
    call("agent.reset(problem.observation)", policy.reset, problem.observation)
    a = call("policy.act(problem.observation)", policy.act, problem.observation)
    if a is not None:
        arr = np.asarray(a)
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.number):
            raise CheckFailed(f"policy.act() returned {type(a).__name__} of shape {arr.shape} and dtype {arr.dtype}; "
                              "return a 1-D float action vector (or None when done)")


def check_solver_actions_within_bounds(component: Any, env: CheckEnv) -> None:
    problem = _problem(component, env)
    if problem.world is None:
        raise CheckSkipped("the check problem has no world, so action bounds are unknown")
    lo = np.asarray(problem.world.action_low, np.float64)
    hi = np.asarray(problem.world.action_high, np.float64)
    actions, horizon = _rollout(component, problem)
    for i, a in enumerate(actions):
        if a.shape != lo.shape:
            raise CheckFailed(f"action {i} has shape {a.shape}, the world takes {lo.shape}; build actions with "
                              "embodiment.joint_action(...) or match world.action_low")
        if not np.all(np.isfinite(a)):
            raise CheckFailed(f"action {i} holds NaN or inf: {a.tolist()}")
        out = (a < lo - 1e-9) | (a > hi + 1e-9)
        if out.any():
            j = int(np.nonzero(out)[0][0])
            raise CheckFailed(f"action {i} entry {j} is {a[j]:.4g}, outside the world's bounds [{lo[j]:.4g}, "
                              f"{hi[j]:.4g}]; clip actions to world.action_low/action_high (np.clip) before returning")
    if horizon is not None and len(actions) > horizon:
        raise CheckFailed(f"the policy gave more than world.horizon={horizon} actions without returning None; return "
                          "None when the plan is done (at the latest after horizon actions)")


def check_solver_determinism(component: Any, env: CheckEnv) -> None:
    a, _ = _rollout(component, _problem(component, env))
    b, _ = _rollout(component, _problem(component, env))
    if len(a) != len(b):
        raise CheckFailed(f"the same problem and seed gave {len(a)} then {len(b)} actions; seed every random source "
                          "from problem.seed (np.random.default_rng(problem.seed))")
    for i, (x, y) in enumerate(zip(a, b)):
        if x.shape != y.shape or not np.allclose(x, y, rtol=1e-6, atol=1e-9):
            raise CheckFailed(f"the same problem and seed gave a different action {i} ({x.tolist()} vs {y.tolist()}); "
                              "seed every random source from problem.seed and never use global random state")


def check_solver_no_input_mutation(component: Any, env: CheckEnv) -> None:
    problem = _problem(component, env)
    arrays = {"flow.points": problem.flow.points, "flow.visible": problem.flow.visible,
              "flow.colors": problem.flow.colors, "observation.joints": problem.observation.joints}
    if problem.grasp is not None:
        arrays["grasp.T_world_grasp"] = problem.grasp.T_world_grasp
    if problem.grasped is not None:
        arrays["grasped"] = problem.grasped
    snap = Snapshot(**arrays)
    provenance = dict(problem.flow.provenance)
    _rollout(component, problem)
    snap.assert_unchanged("solve()/policy.act()")
    if dict(problem.flow.provenance) != provenance:
        raise CheckFailed("solve() modified problem.flow.provenance; copy it before adding entries")


def check_solver_rejects_malformed_input(component: Any, env: CheckEnv) -> None:
    problem = _problem(component, env)
    bad = replace(problem, flow=np.array(problem.flow.points))
    expect_value_error("solve(problem)", component.solve, bad, arg="flow",
                       given="a Problem whose flow is a bare array, not d2f_core.ObjectFlow",
                       fix="check isinstance(problem.flow, ObjectFlow) and raise ValueError('flow: ...')")


CHECKS: list[Check] = [
    *common_checks("solver"),
    Check("solver_returns_policy", "solver", check_solver_returns_policy,
          "solve() returns a Policy whose act() gives a 1-D action or None"),
    Check("solver_actions_within_bounds", "solver", check_solver_actions_within_bounds,
          "every action is finite and within the world's bounds; at most horizon actions before None"),
    Check("solver_determinism", "solver", check_solver_determinism,
          "the same problem and seed give the same actions"),
    Check("solver_no_input_mutation", "solver", check_solver_no_input_mutation,
          "problem.flow, observation, grasp arrays are unchanged by solving and acting"),
    Check("solver_rejects_malformed_input", "solver", check_solver_rejects_malformed_input,
          "a Problem whose flow is not an ObjectFlow raises ValueError naming 'flow'"),
]
