"""Embodiments franka / spot / gr1 (plugins/embodiment/robosuite_robots.py) against ground truth
(robosuite-arm: tests/test_embodiments_by_name.py).

Ground truth: the Franka Panda's published DH parameters, GR1's left/right mirror symmetry, finite
differences of FK, and -- bound to a live robosuite env -- MuJoCo's own grip-site poses and the
joints the simulated controller actually reaches.

The bound tests build robosuite envs themselves (``robosuite.make(..., controller_configs=
embodiment.controller_config())``) and bind a minimal world object with ``env``/``model``/``data``/
``action_low``/``action_high``, as the robosuite World plugin does. They switch off MuJoCo's fluid
model (robosuite's base.xml sets air density 1.2, which with robosuite's inflated link inertias drags
the Panda's 12 N m wrist joints; see docs/embodiments.md) the way the world is asked to.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("robosuite")
pytest.importorskip("mujoco")

pytestmark = pytest.mark.sim

from d2f_core.geometry import rotation_angle, so3_log  # noqa: E402
from d2f_core.protocols import GRIPPER_CLOSED, GRIPPER_OPEN, GraspingArm  # noqa: E402
from d2f_core.registry import OptionsError, get_registry  # noqa: E402


def make(name: str, **options):
    return get_registry().create("embodiment", name, options)


@pytest.fixture(scope="module")
def franka():
    return make("franka")


@pytest.fixture(scope="module")
def spot():
    return make("spot")


@pytest.fixture(scope="module")
def gr1():
    return make("gr1")


@pytest.fixture(scope="module")
def embodiments(franka, spot, gr1):
    return {"franka": franka, "spot": spot, "gr1": gr1}


def random_q(emb, rng, margin=0.1):
    lo, hi = emb.joint_limits[:, 0], emb.joint_limits[:, 1]
    return lo + (hi - lo) * rng.uniform(margin, 1 - margin, size=emb.dof)


# --------------------------------------------------------------------------- standalone


@pytest.mark.parametrize("name,robot,dof,first_joint", [
    ("franka", "Panda", 7, "robot0_joint1"),
    ("spot", "SpotWithArmFloating", 6, "robot0_arm_sh0"),
    ("gr1", "GR1ArmsOnly", 7, "robot0_r_shoulder_pitch"),
])
def test_description_from_the_mjcf(embodiments, name, robot, dof, first_joint):
    emb = embodiments[name]
    assert emb.robot == emb.robosuite_robot == robot
    assert emb.dof == dof and len(emb.joint_names) == dof and emb.joint_names[0] == first_joint
    assert emb.joint_limits.shape == (dof, 2) and np.all(emb.joint_limits[:, 0] < emb.joint_limits[:, 1])
    assert emb.velocity_limits.shape == (dof,) and np.all(emb.velocity_limits > 0)
    assert emb.capabilities >= {"ik", "deterministic", "grasping"}
    assert isinstance(emb, GraspingArm) and (emb.gripper_open, emb.gripper_closed) == (GRIPPER_OPEN, GRIPPER_CLOSED)
    assert emb.ee_site == "gripper0_right_grip_site"
    assert np.all(emb.home_q >= emb.joint_limits[:, 0]) and np.all(emb.home_q <= emb.joint_limits[:, 1])


def test_franka_limits_are_the_panda_mjcf_ranges(franka):
    # robosuite's panda/robot.xml ranges (radians)
    expected = np.array([[-2.8973, 2.8973], [-1.7628, 1.7628], [-2.8973, 2.8973], [-3.0718, -0.0698],
                         [-2.8973, 2.8973], [-0.0175, 3.7525], [-2.8973, 2.8973]])
    np.testing.assert_allclose(franka.joint_limits, expected, atol=1e-9)
    np.testing.assert_allclose(franka.velocity_limits, [2.175] * 4 + [2.61] * 3)


def _panda_flange_dh(q: np.ndarray) -> np.ndarray:
    """Franka Panda flange pose from its published (modified) DH parameters."""
    def dh(a, d, alpha, theta):
        ca, sa, ct, st = math.cos(alpha), math.sin(alpha), math.cos(theta), math.sin(theta)
        return np.array([[ct, -st, 0, a], [st * ca, ct * ca, -sa, -d * sa], [st * sa, ct * sa, ca, d * ca],
                         [0, 0, 0, 1.0]])
    params = [(0, 0.333, 0), (0, 0, -math.pi / 2), (0, 0.316, math.pi / 2), (0.0825, 0, math.pi / 2),
              (-0.0825, 0.384, -math.pi / 2), (0, 0, math.pi / 2), (0.088, 0, math.pi / 2)]
    T = np.eye(4)
    for (a, d, alpha), th in zip(params, q):
        T = T @ dh(a, d, alpha, th)
    return T @ dh(0, 0.107, 0, 0)


def test_franka_fk_agrees_with_the_panda_dh_chain(franka):
    """The grip site sits at one fixed offset from the DH flange for every q (the chain is right)."""
    rng = np.random.default_rng(0)
    offsets = [np.linalg.inv(_panda_flange_dh(q)) @ franka.fk(q) for q in (random_q(franka, rng) for _ in range(8))]
    for off in offsets[1:]:
        np.testing.assert_allclose(off, offsets[0], atol=1e-6)
    # along the flange z axis, 9.65 cm (robosuite hand + grip site), rotated about z only
    np.testing.assert_allclose(offsets[0][:2, 3], 0.0, atol=1e-6)
    assert 0.09 < offsets[0][2, 3] < 0.11
    np.testing.assert_allclose(offsets[0][:3, 2], [0, 0, 1], atol=1e-6)


def test_gr1_left_arm_mirrors_the_right():
    right, left = make("gr1"), make("gr1", arm="left")
    assert left.joint_names[0] == "robot0_l_shoulder_pitch" and left.ee_site == "gripper0_left_grip_site"
    mirror = np.array([1, -1, -1, 1, -1, -1, 1.0])  # pitch joints keep their sign, roll/yaw flip
    rng = np.random.default_rng(1)
    n = 0
    while n < 4:
        q = random_q(right, rng, 0.2)
        ql = q * mirror
        if np.any(ql < left.joint_limits[:, 0]) or np.any(ql > left.joint_limits[:, 1]):
            continue
        pr, pl = right.fk(q)[:3, 3], left.fk(ql)[:3, 3]
        np.testing.assert_allclose(pl, pr * [1, -1, 1], atol=1e-3)
        n += 1


@pytest.mark.parametrize("name", ["franka", "spot", "gr1"])
def test_jacobian_is_the_derivative_of_fk(embodiments, name):
    emb = embodiments[name]
    rng = np.random.default_rng(2)
    h = 1e-6
    for _ in range(3):
        q = random_q(emb, rng)
        J = emb.jacobian(q)
        Jfd = np.zeros_like(J)
        for i in range(emb.dof):
            dq = np.zeros(emb.dof)
            dq[i] = h
            Tp, Tm = emb.fk(q + dq), emb.fk(q - dq)
            Jfd[:3, i] = (Tp[:3, 3] - Tm[:3, 3]) / (2 * h)
            Jfd[3:, i] = so3_log(Tp[:3, :3] @ Tm[:3, :3].T) / (2 * h)
        np.testing.assert_allclose(J, Jfd, atol=2e-6)
        T2, J2 = emb.fk_jacobian(q)
        np.testing.assert_array_equal(T2, emb.fk(q))
        np.testing.assert_array_equal(J2, J)
    Q = np.stack([random_q(emb, rng) for _ in range(5)])
    Ts, Js = emb.fk_jacobian(Q)
    assert Ts.shape == (5, 4, 4) and Js.shape == (5, 6, emb.dof)
    for i in range(5):
        np.testing.assert_array_equal(Ts[i], emb.fk(Q[i]))
        np.testing.assert_array_equal(Js[i], emb.jacobian(Q[i]))
    np.testing.assert_array_equal(emb.fk_batch(Q), Ts)


@pytest.mark.parametrize("name", ["franka", "spot", "gr1"])
def test_ik_round_trip_from_home(embodiments, name):
    emb = embodiments[name]
    rng = np.random.default_rng(3)
    for _ in range(5):
        target = emb.fk(random_q(emb, rng))
        res = emb.ik(target, emb.home_q)
        assert res.success, (res.position_error, res.rotation_error)
        assert np.all(res.q >= emb.joint_limits[:, 0]) and np.all(res.q <= emb.joint_limits[:, 1])
        T = emb.fk(res.q)
        assert np.linalg.norm(T[:3, 3] - target[:3, 3]) < 1e-3
        assert rotation_angle(T[:3, :3].T @ target[:3, :3]) < 1e-2
        assert abs(res.position_error - np.linalg.norm(T[:3, 3] - target[:3, 3])) < 1e-9
    # position only: any orientation goes
    target = emb.fk(random_q(emb, rng))
    target[:3, :3] = np.eye(3)
    res = emb.ik(target, emb.home_q, position_only=True)
    assert res.success and np.linalg.norm(emb.fk(res.q)[:3, 3] - target[:3, 3]) < 1e-3


def test_ik_is_deterministic_and_honest_when_unreachable(franka):
    target = franka.fk(franka.home_q)
    target[:3, 3] += [2.0, 0.0, 0.0]  # 2 m beyond the arm's reach
    a = franka.ik(target, franka.home_q)
    b = franka.ik(target, franka.home_q)
    assert not a.success and a.position_error > 1.0
    np.testing.assert_array_equal(a.q, b.q)
    assert np.all(a.q >= franka.joint_limits[:, 0]) and np.all(a.q <= franka.joint_limits[:, 1])
    assert abs(a.position_error - np.linalg.norm(franka.fk(a.q)[:3, 3] - target[:3, 3])) < 1e-9


def test_inputs_are_validated(franka):
    with pytest.raises(ValueError, match="q"):
        franka.fk(np.zeros(6))
    with pytest.raises(ValueError, match="T_world_ee"):
        franka.ik(np.eye(3))
    bad = np.eye(4)
    bad[:3, :3] *= 2
    with pytest.raises(ValueError, match="T_world_ee"):
        franka.ik(bad)
    with pytest.raises(ValueError, match="q_init"):
        franka.ik(np.eye(4), np.zeros(3))


def test_gr1_wrist_limits_keep_the_hand_off_its_own_wrist():
    """Inside gr1's default wrist limits the hand (open or closed) never touches the robot's own links;
    the MJCF's +-1.5 would let it (ground truth: MuJoCo's collision detection on the robot model)."""
    import mujoco

    from d2f_plugins.embodiment.robosuite_kinematics import _gripper_qpos
    from robosuite.models.grippers import gripper_factory

    emb = make("gr1")
    m = emb.kinematics.model
    d = mujoco.MjData(m)
    adr = emb.kinematics.qpos_adr
    gripper = gripper_factory("FourierRightHand", idn="0_right")
    hand = {b for b in range(m.nbody) if (mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, b) or "").startswith(
        "gripper0_right")}

    def touches(roll, pitch, closed):
        d.qpos[:] = _gripper_qpos(mujoco, m, emb.info.standalone_qpos(m), gripper, 1.0 if closed else -1.0)
        d.qpos[adr[5]], d.qpos[adr[6]] = roll, pitch
        mujoco.mj_forward(m, d)
        return any((m.geom_bodyid[c.geom1] in hand) != (m.geom_bodyid[c.geom2] in hand) for c in d.contact[:d.ncon])

    (r0, r1), (p0, p1) = emb.joint_limits[5], emb.joint_limits[6]
    for roll in np.linspace(r0, r1, 7):
        for pitch in np.linspace(p0, p1, 7):
            assert not touches(roll, pitch, False) and not touches(roll, pitch, True), (roll, pitch)
    assert touches(1.2, 0.0, False) and touches(0.0, 1.2, False)  # outside: it does
    assert make("gr1", wrist_limits=None).joint_limits[5, 1] == 1.5


def test_options_are_validated():
    with pytest.raises(ValueError, match="velocity_limits"):
        make("franka", velocity_limits=[1.0, 2.0])
    with pytest.raises(OptionsError):
        make("spot", variant="Atlas")
    # the real Franka is its own plugin: the old option says where it went
    with pytest.raises(OptionsError, match=r"backend.*embodiment\.plugin=franka-deoxys"):
        make("franka", backend="deoxys")
    with pytest.raises(OptionsError, match="backend"):
        make("franka", backend="sim")
    emb = make("gr1", variant="GR1FixedLowerBody", arm="left")
    assert emb.robot == "GR1FixedLowerBody" and emb.arm == "left" and emb.gripper_dof == 6


def test_control_needs_a_bound_world(franka):
    with pytest.raises(RuntimeError, match="bind"):
        franka.joint_action(franka.home_q)
    with pytest.raises(RuntimeError, match="bind"):
        franka.current_q()


def test_controller_config_asks_for_absolute_joint_targets(embodiments):
    for emb in embodiments.values():
        cfg = emb.controller_config()
        assert cfg["type"] == "BASIC"
        arm = cfg["body_parts"][emb.arm]
        assert arm["type"] == "JOINT_POSITION" and arm["input_type"] == "absolute"
        mjcf = np.array([emb.info.joint_ranges[j] for j in emb.joint_names])
        np.testing.assert_allclose(arm["input_min"], mjcf[:, 0])  # action bounds: the MJCF ranges
        np.testing.assert_allclose(arm["input_max"], mjcf[:, 1])
        assert np.all(emb.joint_limits[:, 0] >= mjcf[:, 0]) and np.all(emb.joint_limits[:, 1] <= mjcf[:, 1])
        cfg["body_parts"][emb.arm]["kp"] = -1
        assert emb.controller_config()["body_parts"][emb.arm]["kp"] > 0  # a fresh dict each call


# --------------------------------------------------------------------------- bound to a live robosuite env


class MiniWorld:
    """The attributes the embodiment reads from a robosuite World (see /tmp/d2f interface)."""

    def __init__(self, emb, env_name: str = "Lift", seed: int = 0):
        import robosuite

        self.env = robosuite.make(env_name, robots=emb.robosuite_robot, controller_configs=emb.controller_config(),
                                  has_renderer=False, has_offscreen_renderer=False, use_camera_obs=False,
                                  horizon=100000, seed=seed)
        self.reset()
        self.action_low, self.action_high = (np.asarray(a, dtype=np.float64) for a in self.env.action_spec)

    def reset(self):
        self.env.reset()
        self.model, self.data = self.env.sim.model._model, self.env.sim.data._data
        self.model.opt.density = 0.0  # see the module docstring
        self.model.opt.viscosity = 0.0

    def step(self, action):
        self.env.step(np.clip(action, self.action_low, self.action_high))

    def site_pose(self, site: str) -> np.ndarray:
        import mujoco

        sid = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_SITE, site)
        T = np.eye(4)
        T[:3, :3] = self.data.site_xmat[sid].reshape(3, 3)
        T[:3, 3] = self.data.site_xpos[sid]
        return T


def assert_fk_matches_live(emb, world):
    import mujoco

    mujoco.mj_kinematics(world.model, world.data)  # site poses of the current qpos
    live = world.site_pose(emb.ee_site)
    T = emb.fk(emb.current_q())
    assert np.linalg.norm(T[:3, 3] - live[:3, 3]) < 1e-3
    assert math.degrees(rotation_angle(T[:3, :3].T @ live[:3, :3])) < 0.5
    return T, live


def check_bound(emb, world, rng, *, steps=12, jump=0.15, tol=0.02):
    """The bound-embodiment contract on a live env; returns measured numbers."""
    emb.bind(world)
    out = {}
    T, live = assert_fk_matches_live(emb, world)
    # standalone kinematics + the base pose give the same answer (exactly when the robot has no torso;
    # the standalone model holds a torso at its home pose, the live one is where the sim put it)
    Ts = emb.T_world_base @ emb._standalone.fk(emb.current_q())
    out["standalone_vs_bound_m"] = float(np.linalg.norm(Ts[:3, 3] - T[:3, 3]))
    if not emb.info.torso_joints:
        assert out["standalone_vs_bound_m"] < 1e-6 and rotation_angle(Ts[:3, :3].T @ T[:3, :3]) < 1e-6
    # fk / jacobian / ik never touch the live simulation
    qpos, site = world.data.qpos.copy(), world.data.site_xpos.copy()
    emb.jacobian(emb.home_q)
    emb.ik(emb.fk(emb.home_q), emb.current_q())
    np.testing.assert_array_equal(world.data.qpos, qpos)
    np.testing.assert_array_equal(world.data.site_xpos, site)
    # the action vector: the world's shape, inside its bounds, arm targets verbatim
    q0 = emb.current_q()
    q_t = np.clip(q0 + rng.uniform(-jump, jump, emb.dof), emb.joint_limits[:, 0] + 0.05, emb.joint_limits[:, 1] - 0.05)
    a = emb.joint_action(q_t, gripper=-1.0)
    assert a.shape == world.action_low.shape
    assert np.all(a >= world.action_low) and np.all(a <= world.action_high)
    assert np.any(np.isclose(a, q_t[0]))
    # executing it reaches the target
    for _ in range(steps):
        world.step(a)
    out["joint_error_rad"] = float(np.abs(emb.current_q() - q_t).max())
    assert out["joint_error_rad"] < tol, out
    assert_fk_matches_live(emb, world)
    # ee_action: a reachable pose (the pose of a nearby joint vector) within 1 cm
    q_g = np.clip(emb.current_q() + rng.uniform(-jump, jump, emb.dof), emb.joint_limits[:, 0] + 0.05,
                  emb.joint_limits[:, 1] - 0.05)
    T_g = emb.fk(q_g)
    a = emb.ee_action(T_g, gripper=-1.0)
    assert emb.last_ik is not None and emb.last_ik.success
    for _ in range(steps):
        world.step(a)
    import mujoco

    mujoco.mj_kinematics(world.model, world.data)
    out["ee_error_m"] = float(np.linalg.norm(world.site_pose(emb.ee_site)[:3, 3] - T_g[:3, 3]))
    assert out["ee_error_m"] < 0.01, out
    return out


@pytest.fixture(scope="module")
def franka_world(franka):
    return MiniWorld(franka, "Door")


def test_franka_bound_to_robosuite(franka, franka_world):
    rng = np.random.default_rng(4)
    out = check_bound(franka, franka_world, rng)
    assert out["joint_error_rad"] < 0.005  # measured ~1e-4 after 12 steps of 0.05 s
    # world frame: the Panda's base stands where the Door task puts it, not at the origin
    assert np.linalg.norm(franka.T_world_base[:3, 3]) > 0.3
    # the conformance suite on the bound embodiment, joint_action bounds included
    from d2f_conformance import all_passed, check_component, format_results

    res = check_component(franka, "embodiment")
    assert all_passed(res), format_results(res)
    assert any(r.check == "embodiment_joint_action_bounds" and r.status == "passed" for r in res)


def test_rebinds_after_the_env_is_rebuilt(franka, franka_world):
    franka.bind(franka_world)
    old = franka_world.model
    franka_world.reset()  # robosuite's hard reset builds a new MjModel
    assert franka_world.env.sim.model._model is not old
    q = franka.current_q()  # notices the new model and re-binds
    assert franka.kinematics.model is franka_world.env.sim.model._model
    np.testing.assert_allclose(q, franka_world.data.qpos[:7])
    assert_fk_matches_live(franka, franka_world)


def test_tracking_a_joint_path_at_half_the_velocity_limits(franka, franka_world):
    """A straight joint path at half the velocity limits: lag and settling as documented."""
    franka.bind(franka_world)
    rng = np.random.default_rng(5)
    dt = 1.0 / franka_world.env.control_freq
    q0 = franka.current_q()
    q1 = np.clip(q0 + rng.uniform(-0.5, 0.5, 7), franka.joint_limits[:, 0] + 0.05, franka.joint_limits[:, 1] - 0.05)
    n = int(np.ceil(np.max(np.abs(q1 - q0) / (0.5 * franka.velocity_limits * dt))))
    lag = 0.0
    for k in range(1, n + 1):
        qk = q0 + (q1 - q0) * k / n
        franka_world.step(franka.joint_action(qk))
        lag = max(lag, float(np.abs(franka.current_q() - qk).max()))
    for _ in range(3):
        franka_world.step(franka.joint_action(q1))
    assert lag < 0.1
    assert np.abs(franka.current_q() - q1).max() < 0.01


@pytest.mark.slow
@pytest.mark.parametrize("name,options,env_name", [
    ("spot", {}, "Lift"),
    ("gr1", {}, "Lift"),
    ("gr1", {"arm": "left"}, "Lift"),
    ("gr1", {"variant": "GR1FixedLowerBody"}, "Lift"),
    ("gr1", {"variant": "GR1FloatingBody"}, "Lift"),
])
def test_other_robots_bound_to_robosuite(name, options, env_name):
    emb = make(name, **options)
    world = MiniWorld(emb, env_name)
    out = check_bound(emb, world, np.random.default_rng(6), steps=15, jump=0.15)
    from d2f_conformance import all_passed, check_component, format_results

    res = check_component(emb, "embodiment")
    assert all_passed(res), format_results(res)
    assert out["joint_error_rad"] < 0.02


@pytest.mark.slow
def test_legged_spot_needs_a_sync_after_it_settles():
    """SpotWithArm (on its legs) sinks after reset: FK is right again after sync()."""
    emb = make("spot", variant="SpotWithArm")
    world = MiniWorld(emb, "Lift")
    emb.bind(world)
    z0 = emb.T_world_base[2, 3]
    a = emb.joint_action(emb.current_q())
    for _ in range(30):
        world.step(a)
    emb.sync()
    assert z0 - emb.T_world_base[2, 3] > 0.1  # it sank (measured ~0.35 m)
    assert_fk_matches_live(emb, world)


def pick_and_lift(emb, world, *, lift=0.15):
    """Top-down grasp of the Lift cube through grasp_to_ee; returns how far the cube rose (m)."""
    import mujoco

    m, d = world.model, world.data
    cube = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "cube_main")
    gid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, "cube_g0")
    p = d.xpos[cube].copy()
    width = 2 * float(m.geom_size[gid][0]) + 0.01

    ax = d.xmat[cube].reshape(3, 3)[:, 0].copy()  # the cube's yaw is random: close across its faces
    ax[2] = 0.0
    ax /= np.linalg.norm(ax)

    def grasp(z):  # approach straight down, jaws closing along the cube's x axis
        T = np.eye(4)
        T[:3, 0], T[:3, 2], T[:3, 3] = ax, [0, 0, -1], p + [0, 0, z]
        T[:3, 1] = np.cross(T[:3, 2], ax)
        return T

    def go(T, gripper, n):
        q0 = emb.current_q()
        res = emb.ik(emb.grasp_to_ee(T, width), q0)
        assert res.success
        for k in range(1, n + 1):
            world.step(emb.joint_action(q0 + (res.q - q0) * k / n, gripper))
        for _ in range(4):
            world.step(emb.joint_action(res.q, gripper))

    go(grasp(0.12), -1.0, 30)
    for z in np.linspace(0.108, 0.0, 10):  # straight down, IK per waypoint
        go(grasp(z), -1.0, 2)
    # the grasp frame is where the cube is (and the ee pose is where grasp_to_ee put it)
    T_grasp = emb.ee_to_grasp(emb.fk(emb.current_q()))
    shift = 0.5 * width * T_grasp[:3, 0] if emb.fixed_jaw else 0.0
    assert np.linalg.norm(T_grasp[:3, 3] + shift - p) < 0.003
    for _ in range(25):
        world.step(emb.joint_action(emb.current_q(), 1.0))
    z0 = d.xpos[cube][2]
    for z in np.linspace(0.015, lift, 10):
        go(grasp(z), 1.0, 3)
    return float(d.xpos[cube][2] - z0)


def test_franka_grasp_frame_picks_up_the_cube(franka):
    """Grasp.T_world_grasp -> grasp_to_ee -> ik -> joint_action(gripper=1) lifts robosuite's Lift cube."""
    world = MiniWorld(franka, "Lift")
    franka.bind(world)
    np.testing.assert_allclose(franka.T_ee_grasp[:3, :3], np.eye(3), atol=1e-6)  # Panda: the site is the grasp frame
    assert pick_and_lift(franka, world) > 0.12


@pytest.mark.slow
def test_spot_grasp_frame_picks_up_the_cube(spot):
    """Spot's BD gripper has a fixed lower jaw: grasp_to_ee(width) puts it against the cube's side."""
    world = MiniWorld(spot, "Lift")
    spot.bind(world)
    assert spot.fixed_jaw
    assert pick_and_lift(spot, world) > 0.12
