"""Acting-side reference plugins: point-mass embodiment, tabletop-2d world, replay solver.

Numbers are checked against ground truth: finite differences for kinematics, the Lynch
quasi-static pushing formula, the camera geometry (d2f_core.Camera) for depth and masks.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from d2f_core import BuildContext, ObjectFlow, Problem, get_registry
from d2f_plugins.embodiment.point_mass import EE_ROTATION, PointMass, PointMassOptions
from d2f_plugins.solver.replay import ReplayOptions, ReplaySolver
from d2f_plugins.world.tabletop_2d import Tabletop2DOptions, Tabletop2DWorld

A, B, H = 0.05, 0.03, 0.04  # default block half-length, half-width, height (m)
RP = 0.01  # pusher radius (m)
C2 = (0.10 ** 2 + 0.06 ** 2) / 12


def rotz(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def fast_world(**kw) -> Tabletop2DWorld:
    return Tabletop2DWorld(Tabletop2DOptions(render_observations=False, **kw))


def small_render_world(**kw) -> Tabletop2DWorld:
    return Tabletop2DWorld(Tabletop2DOptions(width=160, height=120, **kw))


def dist_to_block(world: Tabletop2DWorld, x: float, y: float) -> float:
    """Independent distance (m) from a point to the block rectangle (negative inside)."""
    bx, by, yaw = world.privileged_state()["block_pose"]
    R = rotz(yaw)[:2, :2]
    q = R.T @ np.array([x - bx, y - by])
    d = np.abs(q) - np.array([A, B])
    return float(np.linalg.norm(np.maximum(d, 0)) + min(d.max(), 0.0))


# ============================================================================ point-mass


def test_point_mass_fk_and_jacobian_match_finite_differences():
    pm = PointMass()
    rng = np.random.default_rng(0)
    lo, hi = pm.joint_limits[:, 0], pm.joint_limits[:, 1]
    for _ in range(5):
        q = rng.uniform(lo + 0.01, hi - 0.01)
        T = pm.fk(q)
        np.testing.assert_allclose(T[:3, 3], q, atol=0)
        np.testing.assert_allclose(T[:3, :3], np.diag([1.0, -1.0, -1.0]), atol=0)
        J = pm.jacobian(q)
        assert J.shape == (6, 3)
        eps = 1e-6
        for i in range(3):
            dq = np.zeros(3)
            dq[i] = eps
            Tp, Tm = pm.fk(q + dq), pm.fk(q - dq)
            v = (Tp[:3, 3] - Tm[:3, 3]) / (2 * eps)
            Rdot = (Tp[:3, :3] - Tm[:3, :3]) / (2 * eps)
            W = Rdot @ T[:3, :3].T  # skew(omega)
            omega = np.array([W[2, 1], W[0, 2], W[1, 0]])
            np.testing.assert_allclose(J[:3, i], v, atol=1e-8)
            np.testing.assert_allclose(J[3:, i], omega, atol=1e-8)


def test_point_mass_ik_round_trip_and_clipping():
    pm = PointMass()
    rng = np.random.default_rng(1)
    lo, hi = pm.joint_limits[:, 0], pm.joint_limits[:, 1]
    for _ in range(10):
        q = rng.uniform(lo, hi)
        res = pm.ik(pm.fk(q))
        assert res.success
        np.testing.assert_allclose(res.q, q, atol=1e-12)
        assert res.position_error < 1e-12 and res.rotation_error < 1e-6
    # outside the limits: clipped, failure, honest error
    T = pm.fk(np.zeros(3))
    T[:3, 3] = [0.5, -0.1, -0.05]
    res = pm.ik(T)
    np.testing.assert_allclose(res.q, [0.3, -0.1, 0.0])
    assert not res.success
    assert res.position_error == pytest.approx(math.hypot(0.2, 0.05), rel=1e-12)
    # wrong orientation: failure unless position_only; the angle is reported
    T = np.eye(4)
    T[:3, :3] = rotz(0.3) @ EE_ROTATION
    T[:3, 3] = [0.1, 0.1, 0.1]
    res = pm.ik(T)
    assert not res.success and res.rotation_error == pytest.approx(0.3, abs=1e-9)
    assert res.position_error < 1e-12
    res = pm.ik(T, position_only=True)
    assert res.success
    np.testing.assert_allclose(res.q, [0.1, 0.1, 0.1])
    # inside limits but a rotation within tolerance is still a success
    T[:3, :3] = rotz(5e-4) @ EE_ROTATION
    assert pm.ik(T).success


def test_point_mass_rejects_malformed_inputs_and_options():
    pm = PointMass()
    with pytest.raises(ValueError, match="q"):
        pm.fk(np.zeros(2))
    with pytest.raises(ValueError, match="q"):
        pm.fk(np.array([0.0, np.nan, 0.0]))
    with pytest.raises(ValueError, match="q"):
        pm.jacobian([0.0, 0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="T_world_ee"):
        pm.ik(np.eye(3))
    with pytest.raises(ValueError, match="q_target"):
        pm.joint_action([0.0, 0.0])
    with pytest.raises(ValueError, match="gripper"):
        pm.joint_action([0.0, 0.0, 0.0], gripper=2.0)
    with pytest.raises(ValueError):
        PointMassOptions(joint_limits=[[0.1, -0.1], [0, 1], [0, 1]])
    q = np.array([0.1, 0.2, 0.05])
    pm.fk(q)
    np.testing.assert_array_equal(q, [0.1, 0.2, 0.05])  # inputs untouched


def test_point_mass_joint_action_and_bind():
    pm = PointMass()
    np.testing.assert_allclose(pm.joint_action([0.5, -0.1, -1.0]), [0.3, -0.1, 0.0])  # clipped

    class Fake:
        action_low = np.zeros(5)

    with pytest.raises(ValueError, match="world"):
        pm.bind(Fake())

    class Gripper:
        action_low = np.zeros(4)

    pm.bind(Gripper())
    np.testing.assert_allclose(pm.joint_action([0.1, 0.0, 0.2], gripper=1.0), [0.1, 0.0, 0.2, 1.0])
    world = fast_world()
    world.embodiment.joint_action([0.0, 0.0, 0.0])
    assert world.embodiment.world is world
    assert world.embodiment.joint_action([0.1, 0.2, 0.05]).shape == (3,)


def test_registry_builds_world_with_the_run_embodiment():
    reg = get_registry()
    emb = reg.create("embodiment", "point-mass", {"velocity_limits": [0.2, 0.2, 0.2]})
    ctx = BuildContext(getter=lambda kind: emb if kind == "embodiment" else None)
    world = reg.create("world", "tabletop-2d", {"render_observations": False}, ctx=ctx)
    assert world.embodiment is emb and emb.world is world
    np.testing.assert_allclose(world.action_low, [-0.3, -0.3, 0.0])
    np.testing.assert_allclose(world.action_high, [0.3, 0.3, 0.3])
    world.set_state(pusher=(0.0, -0.2, 0.1))
    world.step([0.2, -0.2, 0.1])
    assert world.privileged_state()["pusher"][0] == pytest.approx(0.02)  # 0.2 m/s * 0.1 s

    class Panda:
        name = "franka"
        robot = "Panda"
        joint_limits = np.zeros((7, 2))
        velocity_limits = np.ones(7)

    with pytest.raises(ValueError, match=r"embodiment\.plugin.*point-mass"):
        reg.create("world", "tabletop-2d", {}, ctx=BuildContext(getter=lambda kind: Panda()))


# ============================================================================ tabletop-2d physics


def test_reset_is_deterministic_and_within_ranges():
    w1, w2 = small_render_world(), small_render_world()
    o1, o2 = w1.reset(7), w2.reset(7)
    assert o1.privileged == o2.privileged
    np.testing.assert_array_equal(o1.rgbd.rgb, o2.rgbd.rgb)
    np.testing.assert_array_equal(o1.rgbd.depth, o2.rgbd.depth)
    o3 = w2.reset(8)
    assert o3.privileged["block_pose"] != o1.privileged["block_pose"]
    assert not np.array_equal(o3.rgbd.rgb, o1.rgbd.rgb)
    w = fast_world()
    for seed in range(30):
        obs = w.reset(seed)
        bx, by, byaw = obs.privileged["block_pose"]
        gx, gy, gyaw = obs.privileged["goal_pose"]
        assert abs(bx) <= 0.05 and abs(by) <= 0.05
        assert 0.08 <= math.hypot(gx - bx, gy - by) <= 0.15
        assert abs(byaw) <= math.radians(30) and abs(gyaw) <= math.radians(30)
        np.testing.assert_allclose(obs.joints, [0.0, -0.2, 0.1])
        assert obs.state["ee_pos"] == pytest.approx([0.0, -0.2, 0.1])
        assert not w.success()
    with pytest.raises(ValueError, match="seed"):
        w.reset(-1)


def test_step_respects_velocity_limit_and_clips_actions():
    w = fast_world()
    w.set_state(block_pose=(0.0, 0.2, 0.0), pusher=(0.0, -0.2, 0.1))
    w.step([1.0, -0.2, 0.1])  # x clipped to 0.3, moves 0.5 m/s * 0.1 s
    assert w.privileged_state()["pusher"] == pytest.approx([0.05, -0.2, 0.1])
    for _ in range(10):
        w.step([1.0, -0.2, 0.1])
    assert w.privileged_state()["pusher"] == pytest.approx([0.3, -0.2, 0.1])
    with pytest.raises(ValueError, match="action"):
        w.step([0.0, 0.0])
    with pytest.raises(ValueError, match="action"):
        w.step([0.0, np.nan, 0.0])


def test_block_does_not_move_when_the_pusher_stays_away():
    w = fast_world()
    w.reset(3)
    before = w.privileged_state()["block_pose"]
    for target in ([0.28, -0.28, 0.01], [0.28, 0.28, 0.01], [-0.28, 0.28, 0.0], [-0.28, -0.28, 0.02]):
        for _ in range(15):
            w.step(target)
    # over the block, above its top: no contact either
    bx, by, _ = before
    for target in ([bx - 0.1, by, 0.06], [bx + 0.1, by, 0.06], [bx, by + 0.1, 0.05]):
        for _ in range(6):
            w.step(target)
    assert w.privileged_state()["block_pose"] == before


@pytest.mark.parametrize("yaw", [0.0, 0.4, -1.0])
def test_face_on_centre_push_translates_without_rotation(yaw):
    w = fast_world()
    bx, by = 0.02, -0.01
    R = rotz(yaw)[:2, :2]
    normal = R @ np.array([0.0, 1.0])  # push along the block's +y axis, onto its -y face
    start = np.array([bx, by]) - normal * (B + RP + 0.02)
    w.set_state(block_pose=(bx, by, yaw), pusher=(*start, 0.015))
    goal = start + normal * (0.02 + 0.035)  # 2 cm to contact, then 3.5 cm of pushing
    for _ in range(3):
        w.step([*goal, 0.015])
    x, y, new_yaw = w.privileged_state()["block_pose"]
    np.testing.assert_allclose([x, y], np.array([bx, by]) + 0.035 * normal, atol=1e-9)
    assert new_yaw == pytest.approx(yaw, abs=1e-9)
    assert dist_to_block(w, *w.privileged_state()["pusher"][:2]) == pytest.approx(RP, abs=1e-9)


@pytest.mark.parametrize("rx", [0.03, -0.03, 0.015])
def test_off_centre_push_rotates_in_the_right_sense_at_the_lynch_rate(rx):
    w = fast_world()
    w.set_state(block_pose=(0.0, 0.0, 0.0), pusher=(rx, -B - RP - 0.001, 0.015))
    push = 0.0005  # 0.5 mm past contact: small-motion regime of the sticking model
    w.step([rx, -B - RP + push, 0.015])
    x, y, yaw = w.privileged_state()["block_pose"]
    ry = -B
    D = C2 + rx * rx + ry * ry
    # contact moves +y by `push`; Lynch sticking twist: w = rx * vy / D, vx = rx ry vy / D, vy = (c2 + ry^2) vy / D
    assert np.sign(yaw) == np.sign(rx)  # pushing the right half forward turns the block left (CCW)
    assert yaw == pytest.approx(rx * push / D, rel=0.02)
    assert x == pytest.approx(rx * ry * push / D, rel=0.02)
    assert y == pytest.approx((C2 + ry * ry) * push / D, rel=0.02)
    # a long push keeps turning it the same way
    for _ in range(3):
        w.step([rx, 0.02, 0.015])
    assert np.sign(w.privileged_state()["block_pose"][2]) == np.sign(rx)
    assert abs(w.privileged_state()["block_pose"][2]) > abs(yaw)


def test_pusher_never_penetrates_the_block():
    w = fast_world()
    rng = np.random.default_rng(5)
    w.reset(1)
    for i in range(300):
        bx, by, _ = w.privileged_state()["block_pose"]
        target = [bx + rng.uniform(-0.1, 0.1), by + rng.uniform(-0.1, 0.1), rng.uniform(0.0, 0.06)]
        w.step(np.clip(target, w.action_low, w.action_high))
        px, py, pz = w.privileged_state()["pusher"]
        if pz < H:
            assert dist_to_block(w, px, py) >= RP - 1e-9, f"step {i}: pusher inside the block"
    # coming down from above onto the block, the pusher rests on its top face
    w.set_state(block_pose=(0.0, 0.0, 0.3), pusher=(0.01, 0.0, 0.1))
    for _ in range(4):
        w.step([0.01, 0.0, 0.0])
    assert w.privileged_state()["pusher"] == pytest.approx([0.01, 0.0, H])
    assert w.privileged_state()["block_pose"] == [0.0, 0.0, 0.3]
    with pytest.raises(ValueError, match="pusher"):
        w.set_state(pusher=(0.0, 0.0, 0.01))


def test_success_checks_position_and_yaw_modulo_pi():
    w = fast_world()
    w.set_state(block_pose=(0.1, 0.0, math.pi + 0.1), goal_pose=(0.115, 0.0, 0.0), pusher=(0, -0.2, 0.1))
    assert w.success()  # 1.5 cm and 0.1 rad (the box is symmetric under a half turn)
    w.set_state(block_pose=(0.1, 0.0, 0.3))
    assert not w.success()  # 17 degrees
    w.set_state(block_pose=(0.125, 0.0, 0.0))
    assert w.success()
    w.set_state(block_pose=(0.09, 0.0, 0.0))
    assert not w.success()  # 2.5 cm


# ============================================================================ tabletop-2d rendering


def test_depth_matches_camera_geometry():
    w = small_render_world()
    w.set_state(block_pose=(0.03, 0.02, 0.5), goal_pose=(-0.1, 0.05, 0.0), pusher=(-0.25, -0.25, 0.05))
    rgbd = w.render()
    cam = rgbd.camera
    assert rgbd.depth.dtype == np.float32 and rgbd.rgb.dtype == np.uint8
    assert rgbd.rgb.shape == (120, 160, 3)
    table = w.object_mask("table")
    # table pixels: the world point where the pixel's ray meets z = 0 projects back to the pixel,
    # at exactly the rendered depth
    K_inv = np.linalg.inv(cam.K)
    R, o = cam.T_world_cam[:3, :3], cam.T_world_cam[:3, 3]
    ys, xs = np.nonzero(table)
    sel = np.random.default_rng(0).choice(len(xs), 300, replace=False)
    for x, y in zip(xs[sel], ys[sel]):
        d = R @ K_inv @ np.array([x, y, 1.0])
        p = o + d * (-o[2] / d[2])
        uv, z = cam.project(p)
        np.testing.assert_allclose(uv, [x, y], atol=1e-9)
        assert rgbd.depth[y, x] == pytest.approx(z, rel=1e-6)
    # a known world point on the table
    p = np.array([0.2, -0.12, 0.0])
    uv, z = cam.project(p)
    x, y = np.round(uv).astype(int)
    p_pix = cam.backproject(np.array([x, y], float), rgbd.depth[y, x])
    assert p_pix[2] == pytest.approx(0.0, abs=1e-6) and np.linalg.norm(p_pix - p) < 0.01
    # block pixels back-project onto the box surface (top or side faces)
    block = w.object_mask("block")
    ys, xs = np.nonzero(block)
    pts = cam.backproject(np.stack([xs, ys], -1).astype(float), rgbd.depth[ys, xs])
    bx, by, yaw = w.privileged_state()["block_pose"]
    local = (pts - [bx, by, 0.0]) @ rotz(yaw)
    gap = np.abs(local) - [A, B, H / 2]
    gap[:, 2] = np.abs(local[:, 2] - H / 2) - H / 2
    assert np.all(gap.max(1) < 1e-5)  # inside the box ...
    assert np.all(np.abs(gap).min(1) < 1e-5)  # ... on one of its faces
    side = np.abs(local[:, 2] - H) > 1e-4
    assert side.sum() > 20  # the oblique camera sees side faces too


def _cross2(a, b) -> float:
    return float(a[0] * b[1] - a[1] * b[0])


def _hull(points: np.ndarray) -> np.ndarray:
    pts = sorted(map(tuple, points))

    def half(seq):
        out = []
        for p in seq:
            while len(out) >= 2 and _cross2(np.subtract(out[-1], out[-2]), np.subtract(p, out[-2])) <= 0:
                out.pop()
            out.append(p)
        return out

    lower, upper = half(pts), half(reversed(pts))
    return np.array(lower[:-1] + upper[:-1])  # counter-clockwise


def test_block_mask_matches_projected_box_corners():
    w = small_render_world()
    for pose in [(0.0, 0.0, 0.0), (0.05, -0.04, 0.7), (-0.12, 0.1, -0.4)]:
        w.set_state(block_pose=pose, pusher=(0.2, -0.22, 0.0))
        bx, by, yaw = pose
        corners = np.array([[bx, by, 0] + rotz(yaw) @ [sx * A, sy * B, z]
                            for sx in (-1, 1) for sy in (-1, 1) for z in (0.0, H)])
        uv, _ = w.camera.project(corners)
        hull = _hull(uv)
        ys, xs = np.mgrid[0:120, 0:160]
        pix = np.stack([xs, ys], -1).astype(float)
        # signed distance (pixels) to each hull edge, positive inside
        sd = np.full(xs.shape, np.inf)
        for a, b in zip(hull, np.roll(hull, -1, axis=0)):
            e = b - a
            n = np.array([-e[1], e[0]]) / np.linalg.norm(e)
            sd = np.minimum(sd, (pix - a) @ n)
        mask = w.object_mask("block")
        clear = np.abs(sd) > 1e-6
        np.testing.assert_array_equal(mask[clear], (sd > 0)[clear])
        assert mask.sum() > 100
    pm = w.object_mask("pusher")
    assert pm.any()
    uv, _ = w.camera.project(np.array([0.2, -0.22, 0.06]))  # top of the pusher cylinder
    x, y = np.round(uv).astype(int)
    assert pm[y - 1:y + 2, x - 1:x + 2].any()
    with pytest.raises(ValueError, match="name"):
        w.object_mask("bowl")


def test_render_shows_textured_moving_block_and_goal_outline():
    w = small_render_world()
    w.set_state(block_pose=(0.0, 0.0, 0.0), goal_pose=(0.1, 0.08, 0.0), pusher=(-0.25, -0.25, 0.05))
    r0 = w.render()
    w.set_state(goal_pose=(0.1, 0.08, 0.5))
    r1 = w.render()
    # the goal outline changes the table only (block pixels identical)
    block = w.object_mask("block")
    changed = np.any(r0.rgb != r1.rgb, axis=-1)
    assert changed.any() and not (changed & block).any()
    np.testing.assert_array_equal(r0.depth, r1.depth)
    # the block's texture moves with it: the colour at the projected block-top centre is the same
    cols = []
    for pose in [(0.0, 0.0, 0.0), (0.06, 0.03, 0.0)]:
        w.set_state(block_pose=pose)
        uv, _ = w.camera.project(np.array([pose[0], pose[1], H]))
        x, y = np.round(uv).astype(int)
        cols.append(w.render().rgb[y, x].astype(int))
    assert np.abs(cols[0] - cols[1]).max() <= 40
    assert w.render().rgb.std() > 10


# ============================================================================ scripted push


def test_scripted_push_reaches_the_goal_on_most_seeds():
    t0 = time.perf_counter()
    w = fast_world()
    wins = 0
    for seed in range(20):
        w.reset(seed)
        before = w.privileged_state()
        actions = w.scripted_push()
        assert w.privileged_state() == before  # planning leaves the world as it was
        assert 0 < len(actions) <= w.horizon
        for a in actions:
            w.step(a)
        wins += w.success()
    assert wins >= 18, f"scripted push succeeded on {wins}/20 seeds"
    assert time.perf_counter() - t0 < 5.0


def test_scripted_push_to_a_given_goal():
    w = fast_world()
    w.reset(4)
    goal = (0.1, 0.1, 0.2)
    for a in w.scripted_push(goal=goal):
        w.step(a)
    bx, by, yaw = w.privileged_state()["block_pose"]
    assert math.hypot(bx - 0.1, by - 0.1) < 0.01 and abs(yaw - 0.2) < math.radians(6)
    with pytest.raises(ValueError, match="goal"):
        w.scripted_push(goal=(0.1, 0.1))


# ============================================================================ replay solver


def _problem(world, flow=None):
    obs = world.reset(0)
    if flow is None:
        flow = ObjectFlow(points=np.zeros((2, 1, 3), np.float32), visible=np.ones((2, 1), bool))
    return Problem(flow=flow, observation=obs, embodiment=world.embodiment, task=world.task, world=world)


def test_replay_solver_replays_given_actions_exactly(tmp_path):
    world = fast_world()
    actions = [[0.1, -0.2, 0.1], [0.1, -0.15, 0.05], [-0.05, -0.1, 0.02]]
    solver = get_registry().create("solver", "replay", {"actions": actions})
    problem = _problem(world)
    policy = solver.solve(problem)
    got = []
    while (a := policy.act(problem.observation)) is not None:
        got.append(a)
    np.testing.assert_array_equal(np.array(got), actions)
    assert policy.act(problem.observation) is None
    # from a .npy file
    path = tmp_path / "actions.npy"
    np.save(path, np.array(actions))
    policy = ReplaySolver(ReplayOptions(file=str(path))).solve(problem)
    np.testing.assert_array_equal([policy.act(None) for _ in range(3)], actions)
    # wrong action length, bad files, ambiguous options
    with pytest.raises(ValueError, match="actions"):
        ReplaySolver(ReplayOptions(actions=[[0.1, 0.2]])).solve(problem)
    with pytest.raises(ValueError, match="file"):
        ReplaySolver(ReplayOptions(file=str(tmp_path / "missing.npy"))).solve(problem)
    with pytest.raises(ValueError, match="actions"):
        get_registry().create("solver", "replay", {"actions": actions, "file": str(path)})


def test_replay_solver_follows_the_flow_mean_displacement():
    world = fast_world()
    rng = np.random.default_rng(2)
    T, N = 6, 40
    p0 = rng.uniform(-0.05, 0.05, size=(N, 3))
    step = np.array([0.012, -0.007, 0.004])
    jitter = rng.normal(0, 0.003, size=(T, N, 3))
    jitter[0] = 0
    pts = p0[None] + np.arange(T)[:, None, None] * step + jitter
    visible = rng.random((T, N)) > 0.2
    visible[0, :] = True
    visible[3, :] = False  # a frame with nothing visible holds the previous target
    pts[~visible] = 1e3  # garbage where invisible: must be ignored
    flow = ObjectFlow(points=pts.astype(np.float32), visible=visible)
    problem = _problem(world, flow)
    q0 = problem.observation.joints.copy()
    policy = get_registry().create("solver", "replay", {"source": "flow", "steps_per_frame": 2}).solve(problem)
    assert len(policy) == 2 * (T - 1)
    P = flow.points.astype(np.float64)
    for t in range(1, T):
        for _ in range(2):
            world.step(policy.act(None))
        tt = t if t != 3 else 2
        both = visible[0] & visible[tt]
        expected = q0 + (P[tt, both] - P[0, both]).mean(0)
        np.testing.assert_allclose(world.privileged_state()["pusher"], expected, atol=1e-9)
    assert policy.act(None) is None
    assert policy.info["frames_without_points"] == 1
