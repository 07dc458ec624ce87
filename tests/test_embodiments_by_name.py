"""Robots by name (``robosuite-arm``), the one gripper convention, GraspingArm, ``franka-deoxys`` as its
own plugin without an import cycle, and the embodiment checks bound to a world (``d2f check NAME --world``).

Ground truth: robosuite's UR5e model (its initial pose, its joint ranges, the live simulator's grip-site
pose and joint readings in the bread_in_bowl world), the UR5e datasheet (180 deg/s per joint), the
fingertip distance of the Robotiq 85 gripper measured in the simulator, and ``sys.modules`` of fresh
interpreters.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from d2f_core.protocols import GRIPPER_CLOSED, GRIPPER_OPEN, GraspingArm
from d2f_core.registry import BuildContext, OptionsError, get_registry

ROOT = Path(__file__).resolve().parents[1]
UR5E_HOME = np.array([-0.470, -1.735, 2.480, -2.275, -1.590, -1.991])  # robosuite UR5e.init_qpos

def needs_sim():
    pytest.importorskip("robosuite")
    pytest.importorskip("mujoco")


def make(name: str, **options):
    return get_registry().create("embodiment", name, options)


# --------------------------------------------------------------------------- gripper convention (no simulator)


def test_point_mass_and_replay_use_the_one_gripper_convention():
    from d2f_plugins.embodiment.point_mass import PointMass
    from d2f_plugins.solver.replay import ReplayOptions

    assert (GRIPPER_OPEN, GRIPPER_CLOSED) == (-1.0, 1.0)
    pm = PointMass()

    class FourEntryWorld:  # (x, y, z, gripper) actions
        action_low = np.zeros(4)

    pm.bind(FourEntryWorld())
    np.testing.assert_array_equal(pm.joint_action([0.1, 0.0, 0.2], GRIPPER_OPEN), [0.1, 0.0, 0.2, -1.0])
    np.testing.assert_array_equal(pm.joint_action([0.1, 0.0, 0.2], GRIPPER_CLOSED), [0.1, 0.0, 0.2, 1.0])
    for bad in (1.5, -1.5, float("nan"), "open"):
        with pytest.raises(ValueError, match=r"gripper: expected a number in \[-1, 1\]"):
            pm.joint_action([0.0, 0.0, 0.0], bad)
    assert ReplayOptions(source="flow").gripper == GRIPPER_OPEN  # open unless asked
    assert ReplayOptions(source="flow", gripper=-0.5).gripper == -0.5  # was out of range under [0, 1]
    with pytest.raises(ValueError, match="gripper"):
        ReplayOptions(source="flow", gripper=1.5)


def test_conformance_gripper_check_passes_point_mass_and_catches_a_zero_one_gripper():
    from d2f_conformance import check_component
    from d2f_plugins.embodiment.point_mass import PointMass

    def status(emb):
        res = check_component(emb, "embodiment", only=["embodiment_gripper_convention", "embodiment_grasping_arm"])
        return {r.check: (r.status, r.message) for r in res}

    got = status(PointMass())
    assert got["embodiment_gripper_convention"][0] == "passed"
    assert got["embodiment_grasping_arm"][0] == "skipped"  # no gripper, no 'grasping'

    class ZeroOne(PointMass):  # the old [0, 1] convention: rejects -1
        def joint_action(self, q_target, gripper=0.0):
            if not 0.0 <= float(gripper) <= 1.0:
                raise ValueError(f"gripper: expected [0, 1], got {gripper!r}")
            return super().joint_action(q_target, 0.0)

    status_, msg = status(ZeroOne())["embodiment_gripper_convention"]
    assert status_ == "failed" and "GRIPPER_OPEN" in msg


# --------------------------------------------------------------------------- no import cycle


@pytest.mark.parametrize("module,other,build", [
    ("d2f_plugins.embodiment.robosuite_robots", "d2f_plugins.embodiment.deoxys_backend", "franka"),
    ("d2f_plugins.embodiment.deoxys_backend", "d2f_plugins.embodiment.robosuite_robots", "franka-deoxys"),
])
def test_robosuite_robots_and_deoxys_backend_do_not_import_each_other(module, other, build):
    """Each module, imported (and its plugin built, robosuite permitting) in a fresh interpreter, leaves the
    other out of sys.modules."""
    code = (f"import importlib, importlib.util, sys\n"
            f"m = importlib.import_module({module!r})\n"
            f"out = [{other!r} in sys.modules]\n"
            f"if importlib.util.find_spec('robosuite') is not None:\n"
            f"    reg = []\n"
            f"    m.d2f_register(reg.append)\n"
            f"    man = [x for x in reg if x.name == {build!r}][0]\n"
            f"    man.factory(man.options_model(), None)\n"
            f"    out.append({other!r} in sys.modules)\n"
            f"print(out)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    flags = json.loads(proc.stdout.strip().splitlines()[-1].lower())
    assert flags and not any(flags), (module, other, flags)


# --------------------------------------------------------------------------- robosuite-arm standalone


@pytest.fixture(scope="module")
def ur5e():
    needs_sim()
    return make("robosuite-arm", robot="UR5e")


@pytest.mark.sim
def test_robot_names_are_checked_against_robosuite_with_a_did_you_mean():
    needs_sim()
    with pytest.raises(OptionsError, match=r"embodiment\.options\.robot.*'UR5'.*did you mean 'UR5e'"):
        make("robosuite-arm", robot="UR5")
    with pytest.raises(OptionsError, match="GR1ArmsOnly.*not a robosuite single-arm robot.*gr1"):
        make("robosuite-arm", robot="GR1ArmsOnly")  # two arms: its own plugin
    from d2f_plugins.embodiment.arm_model import single_arm_robots

    assert {"Panda", "UR5e", "Kinova3", "IIWA", "Jaco", "Sawyer"} <= set(single_arm_robots())


@pytest.mark.sim
def test_velocity_limits_are_vendor_figures_or_the_conservative_default():
    needs_sim()
    from d2f_plugins.embodiment.arm_model import CONSERVATIVE_VELOCITY_LIMIT, default_velocity_limits

    deg = math.pi / 180
    expect = {"UR5e": [180 * deg] * 6, "Panda": [2.175] * 4 + [2.61] * 3,
              "Kinova3": [80 * deg] * 4 + [70 * deg] * 3,  # Gen3: 1.3963 / 1.2218 rad/s
              "IIWA": [d * deg for d in (98, 98, 100, 130, 140, 180, 180)],
              "PandaOmron": [2.175] * 4 + [2.61] * 3,  # a Panda arm on a base: found through its model class
              "Jaco": [CONSERVATIVE_VELOCITY_LIMIT] * 7}  # no vendor figure here
    for robot, v in expect.items():
        got, source = default_velocity_limits(robot, len(v))
        np.testing.assert_allclose(got, v, atol=2e-4, err_msg=robot)
        assert source
    assert CONSERVATIVE_VELOCITY_LIMIT <= min(min(v) for k, v in expect.items() if k != "Jaco")


@pytest.mark.sim
def test_ur5e_description_from_robosuite(ur5e):
    assert (ur5e.name, ur5e.robot, ur5e.robosuite_robot, ur5e.dof) == ("robosuite-arm", "UR5e", "UR5e", 6)
    assert ur5e.joint_names == tuple(f"robot0_{j}" for j in ("shoulder_pan_joint", "shoulder_lift_joint",
                                                                "elbow_joint", "wrist_1_joint", "wrist_2_joint",
                                                                "wrist_3_joint"))
    np.testing.assert_allclose(ur5e.joint_limits, [[-6.28319, 6.28319]] * 2 + [[-3.14159, 3.14159]]
                               + [[-6.28319, 6.28319]] * 3)
    np.testing.assert_allclose(ur5e.velocity_limits, [math.pi] * 6)
    np.testing.assert_allclose(ur5e.home_q, UR5E_HOME)
    assert ur5e.ee_site == "gripper0_right_grip_site" and ur5e.gripper_dof == 1
    assert isinstance(ur5e, GraspingArm) and "grasping" in ur5e.capabilities
    # the Robotiq 85 grasp frame approaches along the grip site's z axis, a few cm off at most
    np.testing.assert_allclose(ur5e.T_ee_grasp[:3, 2], [0, 0, 1], atol=1e-6)
    assert np.linalg.norm(ur5e.T_ee_grasp[:3, 3]) < 0.03


@pytest.mark.sim
def test_ur5e_fk_ik_round_trip(ur5e):
    rng = np.random.default_rng(0)
    for _ in range(8):
        q = UR5E_HOME + rng.uniform(-0.5, 0.5, 6)
        target = ur5e.fk(q)
        res = ur5e.ik(target, ur5e.home_q)
        assert res.success, (res.position_error, res.rotation_error)
        T = ur5e.fk(res.q)
        assert np.linalg.norm(T[:3, 3] - target[:3, 3]) < 1e-3
        assert np.linalg.norm(T[:3, 3] - target[:3, 3]) == pytest.approx(res.position_error, abs=1e-12)
        R = T[:3, :3].T @ target[:3, :3]
        assert math.acos(max(-1.0, min(1.0, (np.trace(R) - 1) / 2))) < 1e-2
        # whole turns: the answer stays within half a turn of the start on every joint (+-2 pi joints)
        assert np.all(np.abs(res.q - ur5e.home_q) <= math.pi + 1e-9), res.q - ur5e.home_q


@pytest.mark.sim
def test_ik_moves_whole_turns_towards_the_start(ur5e):
    """A solution one turn away on a +-2 pi joint is brought back: same pose, least rotation."""
    kin = ur5e.kinematics
    q = UR5E_HOME.copy()
    far = q.copy()
    far[0] += 2 * math.pi  # the same pose, a full turn of the shoulder away
    np.testing.assert_allclose(ur5e.fk(far), ur5e.fk(q), atol=1e-9)
    np.testing.assert_allclose(kin.nearest_turn(far, q), q, atol=1e-12)
    # two turns would be nearest but leave the +-2 pi range: one turn is the nearest allowed
    q6, ref = q.copy(), q.copy()
    q6[0], ref[0] = 6.0, -6.0
    np.testing.assert_allclose(kin.nearest_turn(q6, ref)[0], 6.0 - 2 * math.pi)
    np.testing.assert_allclose(kin.nearest_turn(q6, q6), q6)  # already nearest: unchanged


# --------------------------------------------------------------------------- robosuite-arm in the world


@pytest.fixture(scope="module")
def ur5e_world(ur5e):
    world = get_registry().create("world", "robosuite", {"task": "bread_in_bowl", "width": 160, "height": 120},
                                  ctx=BuildContext(getter=lambda k: ur5e if k == "embodiment" else None))
    yield world
    world.close()


def _fingertip_gap(world) -> float:
    """Distance (m) between the gripper's left and right finger pads in the live simulation."""
    import mujoco

    g = world.env.robots[0].gripper["right"]
    m, d = world.model, world.data
    mujoco.mj_kinematics(m, d)

    def centre(names):
        ids = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, n) for n in names]
        return np.mean([d.geom_xpos[i] for i in ids if i >= 0], axis=0)

    return float(np.linalg.norm(centre(g.important_geoms["left_fingerpad"])
                                - centre(g.important_geoms["right_fingerpad"])))


@pytest.mark.sim
def test_ur5e_bound_to_bread_in_bowl_reaches_joint_and_pose_targets(ur5e, ur5e_world):
    w = ur5e_world
    obs = w.reset(0)
    assert ur5e.world is w
    np.testing.assert_allclose(obs.joints, UR5E_HOME, atol=1e-6)
    # fk in the world frame = the simulator's own grip-site pose
    T = ur5e.fk(obs.joints)
    assert np.linalg.norm(T[:3, 3] - obs.state["ee_pos"]) < 1e-6
    assert np.abs(T[:3, :3] - np.reshape(obs.state["ee_xmat"], (3, 3))).max() < 1e-6
    # joint targets: 0.15 rad on every joint, reached to < 0.01 rad in 30 steps (1.5 s)
    q_t = UR5E_HOME + 0.15 * np.array([1, -1, 1, -1, 1, -1])
    a = ur5e.joint_action(q_t, GRIPPER_OPEN)
    assert a.shape == w.action_low.shape == (7,)
    np.testing.assert_array_equal(a[:6], q_t)
    assert a[6] == GRIPPER_OPEN
    for _ in range(30):
        obs = w.step(a)
    assert np.abs(obs.joints - q_t).max() < 0.01
    # a pose 5 cm above the bread, straight down: IK, then joint_action, lands within 1 cm
    bread = np.asarray(obs.privileged["bread"]["pos"])
    T_goal = np.eye(4)
    T_goal[:3, :3] = np.diag([1.0, -1.0, -1.0])
    T_goal[:3, 3] = bread + [0, 0, 0.05]
    T_ee = ur5e.grasp_to_ee(T_goal, 0.05)
    a = ur5e.ee_action(T_ee, GRIPPER_OPEN, strict=True)
    for _ in range(60):
        obs = w.step(a)
    reached = ur5e.ee_to_grasp(ur5e.fk(obs.joints))
    assert np.linalg.norm(reached[:3, 3] - T_goal[:3, 3]) < 0.01
    np.testing.assert_allclose(ur5e.fk(obs.joints)[:3, 3], obs.state["ee_pos"], atol=1e-6)


@pytest.mark.sim
def test_ur5e_gripper_minus_one_opens_plus_one_closes(ur5e, ur5e_world):
    w = ur5e_world
    obs = w.reset(1)
    q = obs.joints
    for _ in range(20):
        w.step(ur5e.joint_action(q, GRIPPER_CLOSED))
    closed = _fingertip_gap(w)
    for _ in range(20):
        w.step(ur5e.joint_action(q, GRIPPER_OPEN))
    opened = _fingertip_gap(w)
    assert opened - closed > 0.03, (opened, closed)  # Robotiq 85: ~8.5 cm stroke
    with pytest.raises(ValueError, match="gripper"):
        ur5e.joint_action(q, 2.0)


@pytest.mark.sim
def test_bound_checks_pass_for_ur5e_and_catch_a_frame_error(ur5e, ur5e_world):
    from d2f_conformance import all_passed, check_component, format_results
    from d2f_conformance.api import make_env

    env = make_env()
    env.world = ur5e_world
    res = check_component(ur5e, "embodiment", env=env)
    assert all_passed(res), format_results(res)
    ran = {r.check for r in res if r.status == "passed"}
    assert {"embodiment_bound_joint_readings", "embodiment_bound_joint_action_tracks", "embodiment_bound_ik_reaches",
            "embodiment_gripper_convention", "embodiment_grasping_arm", "embodiment_joint_action_bounds"} <= ran

    class BaseFrameFk:
        """fk forgets the robot's base pose in the world (a common mistake): 56 cm off in this world."""

        def __init__(self, emb):
            self._e = emb

        def __getattr__(self, k):
            return getattr(self._e, k)

        def fk(self, q):
            return np.linalg.inv(self._e.T_world_base) @ self._e.fk(q)

    env2 = make_env()
    env2.world = ur5e_world
    bad = check_component(BaseFrameFk(ur5e), "embodiment", env=env2, only=["embodiment_bound_joint_readings"])
    assert bad[0].status == "failed" and "world's end-effector reading" in bad[0].message


@pytest.mark.sim
def test_d2f_check_robosuite_arm_with_world(tmp_path):
    needs_sim()
    from typer.testing import CliRunner

    from d2f_core.cli import app

    r = CliRunner().invoke(app, ["check", "robosuite-arm", "--world", "robosuite", "--json"])
    assert r.exit_code == 0, r.output[-3000:]
    results = json.loads(r.stdout[r.stdout.index("["):])
    by = {x["check"]: x["status"] for x in results}
    assert by["bind"] == "passed" and by["embodiment_bound_ik_reaches"] == "passed"
    assert not [x for x in results if x["status"] == "failed"]
    bad = CliRunner().invoke(app, ["check", "trajopt", "--world", "robosuite"])
    assert bad.exit_code == 2 and "--world binds embodiments" in bad.output
    # franka-deoxys drives the real robot: the robosuite world refuses it, and the check says so
    from d2f_conformance import check_plugin

    res = check_plugin("franka-deoxys", world="robosuite")
    assert res[0].check == "bind" and res[0].status == "failed" and "robosuite_robot" in res[0].message


# --------------------------------------------------------------------------- GraspingArm in trajopt


def test_trajopt_refuses_an_embodiment_that_is_not_a_grasping_arm():
    pytest.importorskip("scipy")
    from d2f_conformance.api import make_env
    from d2f_conformance.doubles import default_problem
    from d2f_plugins.embodiment.point_mass import PointMass
    from d2f_plugins.solver.trajopt import TrajoptSolver

    problem = dataclasses.replace(default_problem(make_env()), embodiment=PointMass(), dynamics=None)
    with pytest.raises(ValueError, match=r"embodiment: solver trajopt grasps.*'point-mass' is not a GraspingArm.*"
                                         r"robosuite-arm"):
        TrajoptSolver().solve(problem)


# --------------------------------------------------------------------------- docs: "Add a robot"


@pytest.mark.sim
def test_the_add_a_robot_example_in_the_docs_works():
    needs_sim()
    text = (ROOT / "docs" / "embodiments.md").read_text()
    section = text[text.index("## Add a robot"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(code.strip().splitlines()) <= 25
    ns: dict = {}
    exec(compile(code, "docs/embodiments.md", "exec"), ns)
    manifests = []
    ns["d2f_register"](manifests.append)
    (m,) = manifests
    emb = m.factory(m.options_model(), None)
    assert isinstance(emb, GraspingArm) and emb.name == m.name
    from d2f_conformance import all_passed, check_component, format_results

    res = check_component(emb, "embodiment")
    assert all_passed(res), format_results(res)


# --------------------------------------------------------------------------- end to end (slow)


@pytest.mark.sim
@pytest.mark.slow
def test_ur5e_puts_the_bread_in_the_bowl(tmp_path):
    needs_sim()
    out = tmp_path / "ur5e"
    proc = subprocess.run([sys.executable, "-m", "d2f_core.cli", "run", "bread_in_bowl", "--seed", "0",
                           "--set", "embodiment.plugin=robosuite-arm", "--set", "embodiment.options.robot=UR5e",
                           "--out", str(out)], capture_output=True, text=True, timeout=900, cwd=ROOT)
    result = json.loads((out / "result.json").read_text())
    assert proc.returncode == 0 and result["success"] is True, (proc.stderr[-3000:], result.get("message"))
