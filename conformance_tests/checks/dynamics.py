"""Checks of dynamics models (d2f_core.protocols.DynamicsModel)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..results import CheckFailed
from ..scenes import CheckEnv
from .common import (Check, Snapshot, require_same, blocked_by, arrays_equal, call, common_checks, expect_value_error,
                     require_cap, skip_if_cap)

BATCH = 4
ACTION_SCALE = 0.05  # actions are drawn uniformly in +-ACTION_SCALE (metres for displacement-like actions)


def _action_dim(component: Any, *, root: bool = False) -> int:
    d = getattr(component, "action_dim", None)
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d <= 0:
        if not root:
            blocked_by("dynamics_action_names", f"action_dim is {d!r}")
        raise CheckFailed(f"action_dim is {d!r}; declare a positive int (the length of one action vector)")
    return int(d)


def _points(env: CheckEnv) -> np.ndarray:
    return np.array(env.scene.flow.points[0], dtype=np.float32, copy=True)


def _actions(component: Any, batch: int = BATCH, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(-ACTION_SCALE, ACTION_SCALE, size=(batch, _action_dim(component)))


def _predict(component: Any, points: np.ndarray, actions: np.ndarray, *, root: bool = False) -> np.ndarray:
    """predict() on copies; a malformed output fails here when ``root`` (dynamics_output_types), else
    the calling check is skipped as blocked by that one."""
    out = call(f"predict(points {points.shape}, actions {actions.shape})", component.predict,
               np.array(points, copy=True), np.array(actions, copy=True))
    try:
        return _validated(out, actions.shape[0], points.shape[0])
    except CheckFailed as e:
        if root:
            raise
        blocked_by("dynamics_output_types", str(e).split(";")[0])
        raise


def _validated(out: Any, B: int, N: int) -> np.ndarray:
    if not isinstance(out, np.ndarray):
        raise CheckFailed(f"predict() returned {type(out).__name__}, expected a float32 numpy array B x N x 3; "
                          "convert with np.asarray(x, dtype=np.float32)")
    if out.shape != (B, N, 3):
        hint = "; one row per action: stack per-action predictions on axis 0" if out.shape == (N, 3) else ""
        raise CheckFailed(f"predict() returned shape {out.shape}, expected B x N x 3 = {(B, N, 3)}{hint}")
    if out.dtype != np.float32:
        raise CheckFailed(f"predict() returned {out.dtype}, expected float32: convert with .astype(np.float32)")
    return out


def check_dynamics_output_types(component: Any, env: CheckEnv) -> None:
    out = _predict(component, _points(env), _actions(component), root=True)
    if not np.all(np.isfinite(out)):
        raise CheckFailed("predict() returned NaN or inf for finite points and small actions; positions must be "
                          "finite metres")


def check_dynamics_batch_consistency(component: Any, env: CheckEnv) -> None:
    pts, acts = _points(env), _actions(component)
    batch = _predict(component, pts, acts)
    for b in range(acts.shape[0]):
        alone = _predict(component, pts, acts[b:b + 1])
        ok, why = arrays_equal(batch[b], alone[0], rtol=1e-5, atol=1e-6)
        if not ok:
            raise CheckFailed(f"row {b} of a batch of {acts.shape[0]} actions differs from predicting action {b} "
                              f"alone ({why}); candidates must not influence each other (no batch statistics, "
                              "no shared random draws across the batch, index the right row)")


def check_dynamics_determinism(component: Any, env: CheckEnv) -> None:
    skip_if_cap(component, "api", "a remote service need not be reproducible")
    pts, acts = _points(env), _actions(component)
    a, b = _predict(component, pts, acts), _predict(component, pts, acts)
    require_same(a, b, "points and actions", "predictions")


def check_dynamics_rejects_malformed_input(component: Any, env: CheckEnv) -> None:
    d = _action_dim(component)
    pts = _points(env)
    fix = f"check actions is B x action_dim ({d}) and raise ValueError('actions: ...')"
    expect_value_error("predict(points, actions)", component.predict, pts, np.zeros((2, d + 1)), arg="actions",
                       given=f"actions of width {d + 1} (action_dim is {d})", fix=fix)
    expect_value_error("predict(points, actions)", component.predict, pts, np.zeros(d), arg="actions",
                       given=f"1-D actions of shape ({d},)", fix=fix + " (a single action is a 1 x action_dim batch)")
    expect_value_error("predict(points, actions)", component.predict, np.array(pts[:, :2]), np.zeros((2, d)),
                       arg="points", given="N x 2 points",
                       fix="validate with d2f_core.validate.check_points(points, 'points')")


def check_dynamics_no_input_mutation(component: Any, env: CheckEnv) -> None:
    pts, acts = _points(env), _actions(component)
    snap = Snapshot(points=pts, actions=acts)
    call("predict(points, actions)", component.predict, pts, acts)
    snap.assert_unchanged("predict()")


def check_dynamics_action_names(component: Any, env: CheckEnv) -> None:
    d = _action_dim(component, root=True)
    names = getattr(component, "action_names", None)
    if not isinstance(names, (tuple, list)) or not all(isinstance(n, str) and n.strip() for n in names):
        raise CheckFailed(f"action_names is {names!r}; declare a tuple of non-empty strings naming each action "
                          "entry and its unit, e.g. ('dx (m)', 'dy (m)')")
    if len(names) != d:
        raise CheckFailed(f"action_names has {len(names)} entries but action_dim is {d}; name every entry once")
    if len(set(names)) != len(names):
        raise CheckFailed(f"action_names {list(names)} has duplicates; each entry needs its own name")


EXTREME_ACTION = 1e3


def check_dynamics_edge_actions(component: Any, env: CheckEnv) -> None:
    """Zero, boundary and extreme actions, and a single point: finite B x N x 3 (extreme actions may be
    refused with a ValueError naming ``actions``), never NaN/inf or another exception."""
    d = _action_dim(component)
    pts = _points(env)
    corners = np.array([np.full(d, ACTION_SCALE), np.full(d, -ACTION_SCALE)])
    cases = [("zero actions", pts, np.zeros((3, d))), ("one zero action", pts, np.zeros((1, d))),
             ("boundary actions (every entry +-%g)" % ACTION_SCALE, pts, corners),
             ("a single point", pts[:1], _actions(component, 2))]
    for what, p, a in cases:
        out = _predict(component, p, a)
        if not np.all(np.isfinite(out)):
            raise CheckFailed(f"predict() with {what} returned NaN or inf; positions must stay finite metres "
                              "(guard divisions by the action's norm, e.g. np.linalg.norm(a) + 1e-9)")
    for sign in (1.0, -1.0):
        extreme = np.full((2, d), sign * EXTREME_ACTION)
        try:
            out = component.predict(np.array(pts, copy=True), extreme)
        except ValueError as e:
            if "action" not in str(e).lower():
                raise CheckFailed(f"predict() with extreme actions ({sign * EXTREME_ACTION:+g}) raised ValueError "
                                  f"not naming 'actions': {e}; start the message with 'actions: ...'") from None
            continue
        except Exception as e:  # noqa: BLE001
            raise CheckFailed(f"predict() with extreme actions ({sign * EXTREME_ACTION:+g}) raised "
                              f"{type(e).__name__}: {e}; clip actions to the model's range, or raise ValueError "
                              "('actions: ...') naming the valid range") from None
        out = _validated(out, 2, pts.shape[0])
        if not np.all(np.isfinite(out)):
            raise CheckFailed(f"predict() with extreme actions ({sign * EXTREME_ACTION:+g}) returned NaN or inf; "
                              "clip actions to the model's range or raise ValueError('actions: ...')")


def _transitions(component: Any, env: CheckEnv, k: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    """``k`` small transitions on the standard scene's particles: each action translates them by its first
    (up to) three entries, metres (any trainable model can fit that, none has to fit it exactly)."""
    pts = _points(env)[:64]
    acts = _actions(component, k, seed)
    shift = np.zeros((k, 3))
    shift[:, :min(3, acts.shape[1])] = acts[:, :3]
    points = np.repeat(pts[None], k, axis=0)
    return {"points": points, "actions": acts, "next_points": (points + shift[:, None, :]).astype(np.float32)}


def check_dynamics_trainable_round_trip(component: Any, env: CheckEnv) -> None:
    require_cap(component, "trainable", "fit/save/load are checked on trainable models")
    for m in ("fit", "save", "load"):
        if not callable(getattr(component, m, None)):
            raise CheckFailed(f"capability 'trainable' is declared but {m}() is missing; implement "
                              "d2f_core.protocols.TrainableDynamics (fit, save, load)")
    data = _transitions(component, env)
    snap = Snapshot(**data)
    metrics = call("fit(transitions, progress=callback)", component.fit, data, progress=lambda *a, **kw: None)
    snap.assert_unchanged("fit()")
    if not isinstance(metrics, Mapping) or not all(isinstance(k, str) for k in metrics):
        raise CheckFailed(f"fit() returned {type(metrics).__name__}; return a mapping of metric name -> float, "
                          "e.g. {'loss': 0.01} (d2f train logs it to log.csv)")
    bad = {k: v for k, v in metrics.items() if isinstance(v, bool) or not isinstance(v, (int, float, np.number))
           or not np.isfinite(float(v))}
    if bad:
        raise CheckFailed(f"fit() returned metrics {bad} that are not finite numbers; return floats (convert "
                          "tensors with float(x))")
    pts, acts = _points(env), _actions(component, BATCH, seed=1)
    trained = _predict(component, pts, acts)
    folder = Path(env.tmp_dir) / f"trainable-{id(component)}"
    call(f"save({str(folder)!r})", component.save, str(folder))
    if not folder.is_dir() or not any(folder.iterdir()):
        raise CheckFailed(f"save(directory) wrote nothing into {folder}; write everything load() needs there "
                          "(creating the folder when missing)")
    call("a second fit(transitions)", component.fit, _transitions(component, env, seed=2))
    call(f"load({str(folder)!r})", component.load, str(folder))
    ok, why = arrays_equal(trained, _predict(component, pts, acts), rtol=1e-5, atol=1e-6)
    if not ok:
        raise CheckFailed(f"after save(dir), another fit() and load(dir), predictions differ from those at save "
                          f"time ({why}); load() must restore everything save() wrote (weights, and for d2f "
                          "train's resume the optimiser state too)")


def check_dynamics_trainable_rejects_malformed_transitions(component: Any, env: CheckEnv) -> None:
    require_cap(component, "trainable", "fit is checked on trainable models")
    data = _transitions(component, env)
    lacking = {k: v for k, v in data.items() if k != "next_points"}
    expect_value_error("fit(transitions)", component.fit, lacking, arg="next_points",
                       given="transitions without 'next_points'",
                       fix="check the keys points, actions, next_points and raise ValueError('next_points: ...')")
    wide = dict(data, actions=np.zeros((data["actions"].shape[0], _action_dim(component) + 1)))
    expect_value_error("fit(transitions)", component.fit, wide, arg="actions",
                       given=f"actions of width {_action_dim(component) + 1} (action_dim is {_action_dim(component)})",
                       fix="check actions is K x action_dim and raise ValueError('actions: ...')")


CHECKS: list[Check] = [
    *common_checks("dynamics"),
    Check("dynamics_output_types", "dynamics", check_dynamics_output_types,
          "predict() returns finite float32 B x N x 3"),
    Check("dynamics_batch_consistency", "dynamics", check_dynamics_batch_consistency,
          "row b of a batch equals predicting action b alone"),
    Check("dynamics_determinism", "dynamics", check_dynamics_determinism,
          "the same points and actions give the same prediction (skipped for 'api')"),
    Check("dynamics_rejects_malformed_input", "dynamics", check_dynamics_rejects_malformed_input,
          "actions of the wrong width, 1-D actions and N x 2 points raise ValueError naming the argument"),
    Check("dynamics_no_input_mutation", "dynamics", check_dynamics_no_input_mutation,
          "points and actions are unchanged after predict()"),
    Check("dynamics_edge_actions", "dynamics", check_dynamics_edge_actions,
          "zero, boundary and extreme actions and a single point give finite predictions (or a ValueError "
          "naming actions for extreme ones)"),
    Check("dynamics_action_names", "dynamics", check_dynamics_action_names,
          "action_names has action_dim distinct non-empty names"),
    Check("dynamics_trainable_round_trip", "dynamics", check_dynamics_trainable_round_trip,
          "trainable: fit() returns finite metrics without touching its input; load(dir) restores what save(dir) "
          "wrote, even after another fit"),
    Check("dynamics_trainable_rejects_malformed_transitions", "dynamics",
          check_dynamics_trainable_rejects_malformed_transitions,
          "trainable: fit() without next_points or with actions of the wrong width raises ValueError naming it"),
]
