"""``pymunk`` dynamics (the Push-T oracle) against gym-pusht's own env: the same pushes stepped through
``gym.make("gym_pusht/PushT-v0").unwrapped`` with the same per-step targets and the executor's waypoint rule
(written out here, from ``RandomShootingAgent._advance_queue``), the batched space against one candidate at a
time, pushes that miss or land on the T, a centred axial push, validation and the shared sampler."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("pymunk")
gym = pytest.importorskip("gymnasium")
pytest.importorskip("gym_pusht")

from d2f_plugins.dynamics.heuristic import HeuristicOptions, HeuristicPushDynamics
from d2f_plugins.dynamics.pymunk_model import PymunkDynamics, PymunkOptions
from d2f_plugins.solver.random_shooting import push_waypoints
from d2f_plugins.world import pusht_scene as S

BACKOFF, TOL, STALL, MAX_STEPS = 0.01, 0.002, 0.0005, 15  # random-shooting's defaults (metres, steps)


# --------------------------------------------------------------------------- gym-pusht reference


def _env():
    return gym.make("gym_pusht/PushT-v0", obs_type="state").unwrapped


def _pose(env) -> np.ndarray:
    return np.array(S.pose_from_px(env.block.position, env.block.angle))


def _start_end(action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The push's descent point and end (gym-pusht units) from the solver's own waypoints."""
    wps = push_waypoints(np.asarray(action, dtype=np.float64), np.array([0.0, 0.0, 1.0]), 1.0, 0.01, BACKOFF)
    return S.m_to_px(wps[-3][:2]), S.m_to_px(wps[-2][:2])


def _push_in_env(env, end_px: np.ndarray) -> int:
    """Repeat gym-pusht's env.step(end) under the executor's rule, then lift: the pusher stops colliding (the pusht
    world's shape filter) and one more env.step runs. A pusher that came down onto the T rests on its top, colliding
    with nothing, until a step starts with its disk off the T (the pusht world's rule). Returns the push steps."""
    import pymunk

    (shape,) = env.agent.shapes
    colliding, lifted = shape.filter, pymunk.ShapeFilter(categories=0, mask=0)
    down = not _overlaps(_pose(env), S.px_to_m(np.array(env.agent.position)))
    shape.filter = colliding if down else lifted
    on, stalls, last = 0, 0, None
    while True:
        tip = np.array(env.agent.position) / S.PX_PER_M
        reached = np.linalg.norm(tip - end_px / S.PX_PER_M) <= TOL
        if last is not None and on > 0 and not reached:
            stalls = stalls + 1 if np.linalg.norm(tip - last) < STALL else 0
        if reached or stalls >= 2 or on >= MAX_STEPS:
            break
        if not down and not _overlaps(_pose(env), S.px_to_m(np.array(env.agent.position))):
            down = True
            shape.filter = colliding
        env.step(end_px)
        on += 1
        last = tip
    shape.filter = lifted
    env.step(end_px)
    return on


def _env_push_from_state(block_state: tuple[float, float, float], action: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(pose before, pose after, push steps): gym-pusht reset to the pusher at the descent point (at rest) and the
    T at ``block_state`` (units, radians; gym-pusht's reset_to_state), then the push."""
    s, e = _start_end(action)
    env = _env()
    env.reset(options={"reset_to_state": [30.0, 30.0, *block_state]})  # reset's own step: the pusher away
    env.agent.position = (s[0], s[1])
    before = _pose(env)
    n = _push_in_env(env, e)
    return before, _pose(env), n


def _env_push_from_pose(pose: np.ndarray, action: np.ndarray) -> np.ndarray:
    """The T's pose after the push in gym-pusht's env with the T placed exactly at ``pose`` (metres, radians)."""
    s, e = _start_end(action)
    env = _env()
    env.reset(options={"reset_to_state": [s[0], s[1], 100.0, 100.0, 0.0]})  # reset's own step: nothing touches
    u, v, yaw = S.pose_to_px(pose)
    env.block.angle = yaw       # angle first: pymunk turns a body about its centre of gravity
    env.block.position = (u, v)
    assert np.allclose(_pose(env), pose, atol=1e-12)
    _push_in_env(env, e)
    return _pose(env)


def _moved(points: np.ndarray, before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """``points`` moved rigidly with the T from pose ``before`` to ``after``."""
    return S.to_world(S.to_local(points, before), after)


def _overlaps(pose, xy) -> bool:
    """The pusher's disk at world ``xy`` (metres) overlaps the footprint of the T at ``pose``."""
    p = S.to_local(np.asarray(xy, dtype=np.float64), pose)
    d = min(float(np.hypot(*np.maximum(np.maximum(r.min(0) - p, p - r.max(0)), 0.0)))
            for r in (S.BAR_LOCAL, S.STEM_LOCAL))
    return d < S.PUSHER_RADIUS


def _lands_on_t(pose, action) -> bool:
    """The pusher's disk overlaps the T at the descent point (the pusht world rests it on the T's top)."""
    return _overlaps(pose, S.px_to_m(_start_end(action)[0]))


def _push_at(pose, local_contact, local_push) -> np.ndarray:
    """A push (contact, push vector) given in the T's frame at ``pose``, as a world action (metres)."""
    c = S.to_world(np.asarray(local_contact, dtype=np.float64), pose)
    d = S.rotation2(float(pose[2])) @ np.asarray(local_push, dtype=np.float64)
    return np.array([c[0], c[1], d[0], d[1]])


BLOCK_STATES = [(300.0, 260.0, 0.4), (150.0, 330.0, 2.5), (240.0, 200.0, -1.9)]


# --------------------------------------------------------------------------- (a) equals gym-pusht


def test_simulated_poses_equal_gym_pusht_env_stepped_with_the_same_targets():
    dyn = PymunkDynamics()
    rng = np.random.default_rng(0)
    checked = turned = 0
    for state in BLOCK_STATES:
        env = _env()
        env.reset(options={"reset_to_state": [30.0, 30.0, *state]})
        pose0 = _pose(env)
        points = S.to_world(S.t_surface_points(0.01)[0], pose0)
        actions = dyn.sample_actions(points, 6, rng)
        poses = dyn.simulate_poses(pose0, actions)           # all in one space
        for action, pose in zip(actions, poses):
            before, after, steps = _env_push_from_state(state, action)
            assert np.allclose(before, pose0, atol=1e-12)
            assert steps >= 3
            assert np.linalg.norm(pose[:2] - after[:2]) < 1e-6, (state, action, pose, after)
            assert abs(pose[2] - after[2]) < 1e-6
            checked += 1
            turned += abs(after[2] - pose0[2]) > math.radians(2)
    assert checked >= 12 and turned >= checked // 2  # real pushes that move and turn the T, not near-misses


def test_predict_moves_the_particles_as_gym_pusht_moves_the_t():
    dyn = PymunkDynamics()
    env = _env()
    env.reset(options={"reset_to_state": [30.0, 30.0, 280.0, 250.0, 0.9]})
    pose0 = _pose(env)
    points = S.to_world(S.t_surface_points(0.006)[0], pose0)
    action = _push_at(pose0, (0.03, -0.02), (0.0, 0.04))   # the bar's outer edge, off-centre: turns
    predicted = dyn.predict(points.astype(np.float32), action[None])
    assert predicted.shape == (1, len(points), 3) and predicted.dtype == np.float32
    # the env with the T exactly where the model fitted it (the model's only input from the particles): the
    # particles move rigidly with that env's pose change
    fit = np.array(S.fit_t_pose(points.astype(np.float32)))
    after = _env_push_from_pose(fit, action)
    expected = _moved(points.astype(np.float32).astype(np.float64), fit, after)
    assert np.abs(predicted[0] - expected).max() < 1e-6
    assert abs(math.degrees(after[2] - fit[2])) > 5.0
    assert np.array_equal(predicted[0, :, 2], points[:, 2].astype(np.float32))  # z unchanged
    # (the fit itself is pusht_scene's: a few tenths of a millimetre to millimetres off on these points)


# --------------------------------------------------------------------------- (b) batched == alone


def test_the_batched_space_equals_one_candidate_at_a_time():
    dyn = PymunkDynamics()
    pose = np.array([0.02, -0.03, 0.6])
    points = S.to_world(S.t_surface_points(0.01)[0], pose)
    actions = dyn.sample_actions(points, 24, np.random.default_rng(5))
    actions[3] = _push_at(pose, (0.0, 0.30), (0.0, -0.02))    # a miss among them
    batch = dyn.simulate_poses(pose, actions)
    alone = np.stack([dyn.simulate_poses(pose, a[None])[0] for a in actions])
    assert np.abs(batch - alone).max() < 1e-9
    assert np.array_equal(batch[3], pose)
    assert (np.linalg.norm(batch[:, :2] - pose[:2], axis=1) > 1e-3).sum() >= 18
    pb = dyn.predict(points, actions[:6])
    pa = np.concatenate([dyn.predict(points, a[None]) for a in actions[:6]])
    assert np.abs(pb - pa).max() < 1e-6


# --------------------------------------------------------------------------- (c) misses and landings


def test_a_push_that_misses_or_lands_on_the_t_moves_nothing():
    dyn = PymunkDynamics()
    pose = (-0.04, 0.05, 2.2)
    points = S.to_world(S.t_surface_points(0.01)[0], pose).astype(np.float32)
    actions = np.stack([
        _push_at(pose, (0.15, -0.03), (0.0, 0.05)),    # the line runs 9 cm beside the bar's end
        _push_at(pose, (0.0, -0.12), (0.0, -0.05)),    # pushes away from the T
        _push_at(pose, (0.0, 0.015), (0.0, 0.03)),     # starts on the bar: the pusher rests on the T's top
        _push_at(pose, (0.0, -0.03), (0.0, 0.0)),      # zero length
    ])
    out = dyn.predict(points, actions)
    for b in range(len(actions)):
        assert np.array_equal(out[b], points), b
    # and gym-pusht agrees for the misses (its disk overlapping the T at s would be pushed out instead: the pusht
    # world rests such a pusher on the T's top, so the model moves nothing there)
    fit = np.array(S.fit_t_pose(points))
    for a in actions[:2]:
        assert np.allclose(_env_push_from_pose(fit, a), fit, atol=1e-12)


def test_a_pusher_that_lands_on_the_t_slides_over_it_and_pushes_once_off_it():
    dyn = PymunkDynamics()
    pose = np.array([0.03, 0.01, -0.7])
    d = np.array([1.0, 0.25]) / math.hypot(1.0, 0.25)
    s = np.array([-0.058, 0.0445])                 # 1.45 cm above the bar's inner edge: the disk overlaps the bar
    action = _push_at(pose, s + BACKOFF * d, 0.03 * d)   # along the bar, rising off it, into the stem's side
    assert _lands_on_t(pose, action)
    after = dyn.simulate_poses(pose, action[None])[0]
    assert np.linalg.norm(after[:2] - pose[:2]) > 0.005
    assert np.allclose(after, _env_push_from_pose(pose, action), atol=1e-6)
    # the same push with the disk 1 mm further onto the bar stays on the T's top to the end: nothing moves
    action2 = _push_at(pose, s - [0.0, 0.004] + BACKOFF * d, 0.01 * d)
    assert _lands_on_t(pose, action2)
    assert np.array_equal(dyn.simulate_poses(pose, action2[None])[0], pose)


# --------------------------------------------------------------------------- (d) centred axial push


@pytest.mark.parametrize("contact, push", [((0.0, -0.02), (0.0, 0.04)),     # the bar's outer edge, towards the stem
                                           ((0.0, 0.14), (0.0, -0.04))])   # the stem's end, towards the bar
def test_a_centred_push_along_the_axis_translates_without_turning(contact, push):
    dyn = PymunkDynamics()
    pose = np.array([0.01, -0.02, 1.1])
    action = _push_at(pose, contact, push)
    after = dyn.simulate_poses(pose, action[None])[0]
    local = S.rotation2(pose[2]).T @ (after[:2] - pose[:2])   # the T's motion in its own frame
    assert abs(math.degrees(after[2] - pose[2])) < 0.5
    assert abs(local[0]) < 5e-4                                # no sideways drift
    assert 0.025 < abs(local[1]) < 0.04 and np.sign(local[1]) == np.sign(push[1])
    assert np.allclose(_env_push_from_pose(pose, action), after, atol=1e-9)


# --------------------------------------------------------------------------- walls


def test_a_t_pushed_into_the_wall_stops_as_in_gym_pusht():
    # A T squeezed between the kinematic pusher and a wall is where pymunk's answer depends on the order it visits
    # the contacts: it equals gym-pusht's env here because both spaces hold the same shapes, added in the same order
    # (walls, pusher, T); the batched space can visit them in another order (module docstring).
    dyn = PymunkDynamics()
    pose = np.array(S.pose_from_px((256.0, 370.0), 0.0))      # the stem's end 10 units from the wall's face
    action = _push_at(pose, (0.0, -0.02), (0.0, 0.05))
    after = dyn.simulate_poses(pose, action[None])[0]
    assert np.allclose(after, _env_push_from_pose(pose, action), atol=1e-6)
    assert S.m_to_px(S.to_world(S.STEM_LOCAL, after))[:, 1].max() < 505.0  # held by the wall (face at 504)
    free = PymunkDynamics(PymunkOptions(walls=False)).simulate_poses(pose, action[None])[0]
    assert free[1] - after[1] > 0.01


def test_targets_are_clipped_to_the_board_like_the_pusht_world():
    from d2f_plugins.dynamics.pymunk_model import _physics

    ph = _physics()
    assert (ph.low, ph.high) == (22.0, 489.0)
    try:
        from d2f_plugins.world.pusht import PX_ACTION_HIGH, PX_ACTION_LOW
    except ImportError:
        return
    assert (ph.low, ph.high) == (PX_ACTION_LOW, PX_ACTION_HIGH)


# --------------------------------------------------------------------------- API


def test_sample_actions_are_the_heuristic_sampler():
    points = S.to_world(S.t_surface_points(0.01)[0], (0.0, 0.01, -0.4))
    opts = {"push_length": [0.02, 0.04], "sample_margin": 0.02, "sample_band": 0.008}
    ours = PymunkDynamics(PymunkOptions(**opts)).sample_actions(points, 50, np.random.default_rng(9))
    theirs = HeuristicPushDynamics(HeuristicOptions(**opts)).sample_actions(points, 50, np.random.default_rng(9))
    assert np.array_equal(ours, theirs)
    assert PymunkDynamics.capabilities >= {"particles", "sample_actions", "deterministic", "privileged_model"}


def test_validation_errors():
    dyn = PymunkDynamics()
    points = S.to_world(S.t_surface_points(0.02)[0], (0.0, 0.0, 0.0))
    good = np.array([[0.0, -0.03, 0.0, 0.02]])
    with pytest.raises(ValueError, match="single action"):
        dyn.predict(points, good[0])
    with pytest.raises(ValueError, match="B x 4"):
        dyn.predict(points, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="NaN or inf"):
        dyn.predict(points, np.array([[0.0, np.nan, 0.0, 0.02]]))
    with pytest.raises(ValueError, match="numpy array"):
        dyn.predict(points, [[0.0, -0.03, 0.0, 0.02]])
    with pytest.raises(ValueError, match="numbers"):
        dyn.predict(points, np.array([["a", "b", "c", "d"]]))
    with pytest.raises(ValueError, match="points"):
        dyn.predict(points[:, :2], good)
    with pytest.raises(ValueError, match="at least 3"):
        dyn.predict(points[:2], good)
    with pytest.raises(ValueError, match="pose"):
        dyn.simulate_poses((0.0, np.inf, 0.0), good)
    with pytest.raises(ValueError):
        PymunkOptions(push_length=[0.05, 0.01])
    with pytest.raises(ValueError):
        PymunkOptions(unknown=1)
    assert dyn.predict(points[:0], good).shape == (1, 0, 3)
    assert dyn.predict(points, np.zeros((0, 4))).shape == (0, len(points), 3)
