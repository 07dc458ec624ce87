"""The real-Franka backend (plugins/embodiment/deoxys_backend.py, safety.py) against a Deoxys stand-in.

The stand-in (tests/standins/deoxys) follows Deoxys' documented Python API and records every
``FrankaInterface.control()`` call, moving its simulated joints to each goal. Ground truth: the
Panda datasheet limits, hand-computed step/velocity bounds (velocity_scale x limit / control_hz),
the robosuite Panda FK (sim ``franka``) composed with a known T_world_base, finite differences,
and a fake clock for the rate limiter (no real sleeping).
"""

from __future__ import annotations

import importlib
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("robosuite")
pytest.importorskip("mujoco")

pytestmark = pytest.mark.sim

from d2f_core.registry import PluginUnavailableError, get_registry  # noqa: E402
from d2f_plugins.embodiment.deoxys_backend import DeoxysFranka, DeoxysFrankaOptions, RateLimiter  # noqa: E402
from d2f_plugins.embodiment.safety import (PANDA_JOINT_LIMITS, PANDA_VELOCITY_LIMITS, SafetyError,  # noqa: E402
                                           SafetyGuard, SafetyLimits)

STANDIN = Path(__file__).resolve().parent / "standins" / "deoxys"
INTERFACE_YML = str(STANDIN / "config" / "charmander.yml")
# the stand-in robot's initial joints (Deoxys' example reset pose); EE at ~(0.458, 0.032, 0.272) m
Q0 = np.array([0.09162008114028396, -0.19826458111314524, -0.01990020486871322, -2.4732269941140346,
               -0.01307073642274261, 2.30396583422025, 0.8480939705504309])


class FakeClock:
    """time() and sleep(): sleeping advances time exactly; ``advance`` simulates work."""

    def __init__(self) -> None:
        self.t = 100.0
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.t

    def sleep(self, dt: float) -> None:
        assert dt >= 0
        self.sleeps.append(dt)
        self.t += dt

    def advance(self, dt: float) -> None:
        self.t += dt


def _forget_deoxys() -> None:
    for k in [k for k in sys.modules if k == "deoxys" or k.startswith("deoxys.")]:
        sys.modules.pop(k)
    importlib.invalidate_caches()


@pytest.fixture
def standin(monkeypatch):
    """The Deoxys stand-in on sys.path for this test only; returns its FrankaInterface class."""
    _forget_deoxys()
    monkeypatch.syspath_prepend(str(STANDIN))
    importlib.invalidate_caches()
    from deoxys.franka_interface import FrankaInterface

    assert getattr(sys.modules["deoxys"], "STANDIN", False)
    yield FrankaInterface
    _forget_deoxys()


@pytest.fixture
def clock():
    return FakeClock()


def make(clock: FakeClock | None = None, **options) -> DeoxysFranka:
    clock = clock or FakeClock()
    return DeoxysFranka(DeoxysFrankaOptions(**options), clock=clock.time, sleep=clock.sleep)


def real(clock: FakeClock | None = None, **options) -> DeoxysFranka:
    return make(clock, dry_run=False, deoxys_config=INTERFACE_YML, **options)


# --------------------------------------------------------------------------- safety guard


def test_panda_limits_are_the_models(clock):
    robot = make(clock)
    np.testing.assert_allclose(robot.joint_limits, np.array(PANDA_JOINT_LIMITS), atol=1e-9)
    np.testing.assert_allclose(robot.velocity_limits, PANDA_VELOCITY_LIMITS)
    np.testing.assert_allclose(robot.limits.safe_range, np.array(PANDA_JOINT_LIMITS) + [0.05, -0.05], atol=1e-12)


def test_safety_limits_are_validated():
    with pytest.raises(ValueError, match="workspace_min/workspace_max"):
        SafetyLimits(workspace_min=(0, 0, 0), workspace_max=(1, -1, 1))
    with pytest.raises(ValueError, match="give both"):
        SafetyLimits(workspace_min=(0, 0, 0))
    with pytest.raises(ValueError, match="velocity_scale"):
        SafetyLimits(velocity_scale=1.5)
    with pytest.raises(ValueError, match="joint_margin"):
        SafetyLimits(joint_margin=1.6)  # joint 4 spans only 3.0 rad
    with pytest.raises(ValueError, match="fk"):
        SafetyGuard(SafetyLimits(workspace_min=(0, 0, 0), workspace_max=(1, 1, 1)))
    lim = SafetyLimits()
    with pytest.raises(Exception):
        lim.dt = 1.0  # frozen


def test_guard_names_the_joint_the_value_and_the_fix():
    guard = SafetyGuard(SafetyLimits())
    q = Q0.copy()
    q[3] = -0.06  # joint 4 above its -0.0698 upper limit
    with pytest.raises(SafetyError) as e:
        guard.check(q, -1.0, q)
    assert e.value.check == "joint_limit" and e.value.joint == 3 and isinstance(e.value, ValueError)
    msg = str(e.value)
    assert "joint 4" in msg and "-0.0600" in msg and "-0.1198" in msg and "joint_margin" in msg and "Fix" in msg


# --------------------------------------------------------------------------- real mode (stand-in)


def test_valid_trajectory_arrives_complete_in_order_and_within_limits(standin, clock):
    robot = real(clock)
    traj = np.array([Q0 + [0.10, -0.05, 0.0, 0.08, 0.0, -0.06, 0.2], Q0 + [0.12, 0.0, 0.03, 0.05, -0.05, 0.0, 0.1],
                     Q0])
    sent = robot.execute(traj, gripper=[-1.0, 1.0, -0.5])
    fi = standin.instances[-1]
    assert fi is robot._robot and fi.general_cfg_file == INTERFACE_YML and fi._control_freq == 20.0
    calls = fi.calls
    assert len(calls) == len(sent) >= 3
    for c, a in zip(calls, sent):
        assert c["controller_type"] == "JOINT_IMPEDANCE"
        assert c["action"].shape == (8,)
        np.testing.assert_array_equal(c["action"], a)
        assert c["controller_cfg"]["is_delta"] is False
        assert c["controller_cfg"]["traj_interpolator_cfg"]["time_fraction"] == 0.3
    A = np.array([c["action"] for c in calls])
    # in order: each waypoint is reached exactly, in turn, with its gripper value
    hits = [int(np.nonzero(np.all(np.abs(A[:, :7] - w) < 1e-12, axis=1))[0][-1]) for w in traj]
    assert hits == sorted(hits) and hits[-1] == len(A) - 1
    assert [A[h, 7] for h in hits] == [-1.0, 1.0, -0.5]
    # within limits: steps from the measured start, joint range, workspace box
    steps = np.abs(np.diff(np.vstack([Q0, A[:, :7]]), axis=0))
    bound = np.minimum(0.05, 0.25 * np.array(PANDA_VELOCITY_LIMITS) / 20.0)
    assert np.all(steps <= bound + 1e-12)
    lim = np.array(PANDA_JOINT_LIMITS)
    assert np.all(A[:, :7] >= lim[:, 0] + 0.05) and np.all(A[:, :7] <= lim[:, 1] - 0.05)
    ee = np.array([robot.fk(q)[:3, 3] for q in A[:, :7]])
    assert np.all(ee >= [0.2, -0.5, 0.02]) and np.all(ee <= [0.8, 0.5, 0.8])
    # the stand-in robot followed: its joints and gripper are the last command's
    np.testing.assert_allclose(robot.current_q(), Q0, atol=1e-12)
    assert robot.gripper_width() == pytest.approx(0.04)  # Deoxys: a < 0 opens to 0.08 |a| m
    robot.close()
    assert fi.closed


@pytest.mark.parametrize("case,check", [
    ("joint_limit", "joint_limit"), ("joint_margin", "joint_limit"), ("big_step", "joint_step"),
    ("too_fast", "velocity"), ("workspace", "workspace"), ("nan", "finite"), ("inf_gripper", "finite"),
    ("gripper_range", "gripper"), ("short", "shape"),
])
def test_unsafe_commands_never_reach_the_robot(standin, clock, case, check):
    robot = real(clock)
    fk0 = robot.fk(Q0)[:3, 3]
    if case == "workspace":  # a box ending 3 mm above the start; joint 2 back by 0.02 rad lifts the hand
        robot = real(clock, workspace_min=[0.2, -0.5, 0.02], workspace_max=[0.8, 0.5, float(fk0[2]) + 0.003])
    q, g = Q0.copy(), -1.0
    if case == "joint_limit":
        q[3] = -0.06  # beyond the hard limit -0.0698
    elif case == "joint_margin":
        q[0] = 2.8973 - 0.02  # inside the hard limit but within joint_margin 0.05
    elif case == "big_step":
        q[6] += 0.06  # > max_joint_step 0.05
    elif case == "too_fast":
        q[0] += 0.04  # < 0.05 step, but 0.8 rad/s > 0.25 x 2.175
    elif case == "workspace":
        q[1] -= 0.02
        assert robot.fk(q)[2, 3] > fk0[2] + 0.003  # precondition: the command leaves the box
    elif case == "nan":
        q[2] = np.nan
    elif case == "inf_gripper":
        g = np.inf
    elif case == "gripper_range":
        g = 1.5
    action = np.append(q, g) if case != "short" else q
    with pytest.raises(SafetyError) as e:
        robot.send(action)
    assert e.value.check == check
    assert robot._robot.calls == [] and standin.instances[-1].calls == []
    np.testing.assert_allclose(robot._robot.last_q, Q0)  # the robot never moved
    if case not in ("big_step", "too_fast"):  # (execute() splits those into small steps)
        with pytest.raises(SafetyError) as e:  # the same through execute()
            robot.execute(q[None] if case != "short" else Q0[None, :6], gripper=g if case != "short" else None)
        # (the interpolated path towards a far joint target may leave the box first)
        assert e.value.check in ((check, "workspace") if check == "joint_limit" else (check,))
        assert robot._robot.calls == []
    robot.send(np.append(Q0 + 0.01, -1.0))  # a safe command still goes
    assert len(robot._robot.calls) == 1


def test_a_bad_waypoint_late_in_a_trajectory_sends_nothing(standin, clock):
    robot = real(clock)
    bad = Q0.copy()
    bad[5] = 3.74  # joint 6 within 0.05 of its 3.7525 limit
    with pytest.raises(SafetyError, match=r"q_traj\[2\].*joint 6.*nothing of the trajectory was sent"):
        robot.execute(np.array([Q0 + 0.1, Q0 + 0.2, bad]))
    assert robot._robot.calls == []


def test_current_q_waits_for_state_and_times_out(standin, clock):
    standin.publish_state = False
    try:
        robot = real(clock, state_timeout=2.0)
        t0 = clock.t
        with pytest.raises(TimeoutError, match="state_timeout 2.0"):
            robot.current_q()
        assert 2.0 <= clock.t - t0 < 2.05  # polled on the fake clock
        with pytest.raises(TimeoutError):
            robot.send(np.append(Q0, -1.0))  # no state: not even the first command goes
        assert robot._robot.calls == []
    finally:
        standin.publish_state = True


def test_missing_deoxys_gives_the_install_steps(clock, tmp_path, monkeypatch):
    _forget_deoxys()
    if importlib.util.find_spec("deoxys") is not None:
        pytest.skip("a 'deoxys' package is installed here")
    robot = real(clock)
    with pytest.raises(PluginUnavailableError) as e:
        robot.send(np.append(Q0, -1.0))
    msg = str(e.value)
    for part in ("deoxys.franka_interface", "git clone https://github.com/UT-Austin-RPL/deoxys_control",
                 "make -j build_deoxys=1", "pip install -e", "not on PyPI", "deoxys_config", "dry_run"):
        assert part in msg, part
    # an unrelated 'deoxys' package (PyPI's) is named as such
    (tmp_path / "deoxys").mkdir()
    (tmp_path / "deoxys" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginUnavailableError, match="unrelated 'deoxys' is importable"):
        real(clock).current_q()
    _forget_deoxys()
    with pytest.raises(ValueError, match="deoxys_config"):
        make(clock, dry_run=False)


def test_controller_config_and_rates_are_checked(standin, clock, tmp_path):
    def cfg(**kw):
        base = {"controller_type": "JOINT_IMPEDANCE", "is_delta": False,
                "traj_interpolator_cfg": {"traj_interpolator_type": "LINEAR_JOINT_POSITION", "time_fraction": 0.3}}
        base.update(kw)
        p = tmp_path / f"c{len(list(tmp_path.iterdir()))}.yml"
        p.write_text(json.dumps(base))  # JSON is YAML
        return str(p)

    with pytest.raises(ValueError, match="is_delta"):
        make(clock, controller_config=cfg(is_delta=True))
    with pytest.raises(ValueError, match="controller_type"):
        make(clock, controller_config=cfg(controller_type="OSC_POSE"))
    # Deoxys reaches each target in time_fraction of a period: velocity_scale / time_fraction <= 1
    with pytest.raises(ValueError, match=r"velocity_scale.*1\.67x"):
        make(clock, velocity_scale=0.5)
    slow = cfg(traj_interpolator_cfg={"traj_interpolator_type": "LINEAR_JOINT_POSITION", "time_fraction": 0.6})
    assert make(clock, velocity_scale=0.5, controller_config=slow).time_fraction == 0.6
    mj = cfg(traj_interpolator_cfg={"traj_interpolator_type": "MIN_JERK_JOINT_POSITION", "time_fraction": 0.3})
    with pytest.raises(ValueError, match=r"1\.56x"):  # 1.875 x 0.25 / 0.3
        make(clock, controller_config=mj)
    # control_hz must be the NUC's POLICY_RATE (20 in the interface YAML)
    with pytest.raises(ValueError, match="POLICY_RATE 20"):
        real(clock, control_hz=10.0)
    # a given controller config is what reaches the robot
    custom = cfg(joint_kp=[50.0] * 7)
    robot = real(clock, controller_config=custom)
    robot.send(np.append(Q0, -1.0))
    assert robot._robot.calls[0]["controller_cfg"]["joint_kp"] == [50.0] * 7
    # a bare file name is looked up in deoxys.config_root
    robot = make(clock, dry_run=False, deoxys_config="charmander.yml")
    robot.connect()
    assert Path(robot._robot.general_cfg_file).resolve() == Path(INTERFACE_YML).resolve()


# --------------------------------------------------------------------------- dry run


def test_dry_run_logs_every_command_and_never_imports_deoxys(clock, tmp_path):
    _forget_deoxys()
    path = tmp_path / "dry.jsonl"
    robot = make(clock, dry_run_log=str(path), dry_run_start_q=Q0.tolist())
    np.testing.assert_allclose(robot.current_q(), Q0)
    sent = robot.execute(np.array([Q0 + 0.1, Q0]), gripper=1.0)
    with pytest.raises(SafetyError):
        robot.send(np.append(Q0 + 0.2, 1.0))  # too big a step
    robot.close()
    assert "deoxys" not in sys.modules
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    assert recs[0]["event"] == "open" and recs[0]["q"] == pytest.approx(Q0.tolist())
    cmds = [r for r in recs if r["event"] == "command"]
    assert [r["seq"] for r in cmds] == list(range(len(sent)))
    assert all(r["controller_type"] == "JOINT_IMPEDANCE" for r in cmds)
    np.testing.assert_allclose([r["action"] for r in cmds], sent)
    np.testing.assert_allclose(np.diff([r["t"] for r in cmds]), 0.05, atol=1e-9)  # 20 Hz on the fake clock
    rej = [r for r in recs if r["event"] == "rejected"]
    assert len(rej) == 1 and rej[0]["check"] == "joint_step" and len(rej[0]["action"]) == 8
    assert recs[-1]["event"] == "close"
    assert robot.command_log[:len(cmds)] == cmds
    np.testing.assert_allclose(robot.current_q(), Q0)  # the simulated joints followed
    assert robot.gripper_width() == 0.0  # closed (Deoxys grasps on a >= 0)


def test_dry_run_start_must_be_safe(clock):
    with pytest.raises(ValueError, match="dry_run_start_q"):
        make(clock, dry_run_start_q=[0, 0, 0, -0.05, 0, 1, 0])
    with pytest.raises(ValueError):
        DeoxysFrankaOptions(dry_run_start_q=[0.0] * 6)
    with pytest.raises(ValueError, match="datasheet"):
        make(clock, velocity_limits=[3.0] * 7)
    with pytest.raises(ValueError, match="T_world_base"):
        DeoxysFrankaOptions(T_world_base=[[2, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    with pytest.raises(ValueError, match="workspace_min"):
        DeoxysFrankaOptions(workspace_min=[0.5, 0, 0], workspace_max=[0.4, 1, 1])


def test_velocity_check_uses_one_over_control_hz(clock):
    vmax = 0.25 * 2.175  # rad/s, joint 1
    for hz in (20.0, 10.0):
        robot = make(clock, control_hz=hz, max_joint_step=0.5, dry_run_start_q=Q0.tolist())
        assert robot.limits.dt == pytest.approx(1 / hz)
        ok, bad = 0.98 * vmax / hz, 1.02 * vmax / hz
        robot.send(np.append(Q0 + [ok, 0, 0, 0, 0, 0, 0], -1.0))
        with pytest.raises(SafetyError) as e:
            robot.send(np.append(Q0 + [ok + bad, 0, 0, 0, 0, 0, 0], -1.0))
        assert e.value.check == "velocity" and e.value.joint == 0
        assert e.value.value == pytest.approx(bad * hz) and e.value.limit == pytest.approx(vmax)
        assert len([r for r in robot.command_log if r["event"] == "command"]) == 1
    # 0.04 rad is too fast at 20 Hz but fine at 10 Hz (0.4 rad/s < 0.544)
    make(clock, control_hz=10.0, dry_run_start_q=Q0.tolist()).send(np.append(Q0 + [0.04, 0, 0, 0, 0, 0, 0], -1.0))


def test_execute_splits_large_moves_into_steps_within_max_joint_step(clock):
    robot = make(clock, max_joint_step=0.01, dry_run_start_q=Q0.tolist())
    target = Q0 + [0.1, 0, 0, 0, 0, 0, -0.05]
    sent = robot.execute(target[None])
    assert len(sent) == 10  # ceil(0.1 / 0.01)
    d = np.diff(np.vstack([Q0, sent[:, :7]]), axis=0)
    np.testing.assert_allclose(d, np.tile([0.01, 0, 0, 0, 0, 0, -0.005], (10, 1)), atol=1e-12)  # equal, linear
    np.testing.assert_array_equal(sent[-1, :7], target)
    # default max_joint_step 0.05: the speed bound 0.25 x 2.175 / 20 = 0.0272 rad per step governs
    robot = make(clock, dry_run_start_q=Q0.tolist())
    sent = robot.execute((Q0 + [0.1, 0, 0, 0, 0, 0, 0])[None])
    assert len(sent) == math.ceil(0.1 / (0.25 * 2.175 / 20)) == 4
    # several waypoints: every waypoint is hit exactly
    robot = make(clock, max_joint_step=0.02, dry_run_start_q=Q0.tolist())
    wps = np.array([Q0 + 0.05, Q0 + [0.05, 0.1, 0.05, 0.05, 0.05, 0.05, 0.05], Q0])
    sent = robot.execute(wps)
    assert np.max(np.abs(np.diff(np.vstack([Q0, sent[:, :7]]), axis=0))) <= 0.02 + 1e-12
    assert sum(bool(np.all(np.abs(s[:7] - w) < 1e-12)) for s in sent for w in wps) >= 3


def test_gripper_zero_keeps_the_last_command(clock):
    robot = make(clock, dry_run_start_q=Q0.tolist())
    assert robot.joint_action(Q0)[7] == -1.0  # Deoxys opens the gripper when it starts
    a = robot.joint_action(Q0, 1.0)
    assert a.shape == (8,) and a[7] == 1.0
    np.testing.assert_array_equal(a[:7], Q0)
    robot.send(a)
    assert robot.joint_action(Q0 + 0.01)[7] == 1.0
    with pytest.raises(ValueError, match="gripper"):
        robot.joint_action(Q0, 2.0)
    with pytest.raises(ValueError, match="q_target"):
        robot.joint_action(Q0[:6])
    low, high = robot.action_bounds()
    np.testing.assert_allclose(low, list(np.array(PANDA_JOINT_LIMITS)[:, 0]) + [-1])
    np.testing.assert_allclose(high, list(np.array(PANDA_JOINT_LIMITS)[:, 1]) + [1])


# --------------------------------------------------------------------------- rate limiter


def test_rate_limiter_runs_at_20_hz_on_a_fake_clock(clock):
    robot = make(clock, dry_run_start_q=Q0.tolist())
    robot.execute(np.array([Q0 + [0.2, 0, 0, 0, 0, 0, 0]]))  # 8 steps of 0.025 rad
    t = np.array([r["t"] for r in robot.command_log])
    np.testing.assert_allclose(np.diff(t), 0.05, atol=1e-12)
    assert len(t) == 8 and len(clock.sleeps) == 7
    # work between sends is absorbed: still one command every 50 ms
    rl = RateLimiter(20.0, clock.time, clock.sleep)
    times = []
    for work in (0.0, 0.02, 0.02, 0.08, 0.0, 0.0):
        clock.advance(work)
        times.append(rl.wait())
    np.testing.assert_allclose(np.diff(times), [0.05, 0.05, 0.08, 0.05, 0.05], atol=1e-12)  # no catch-up burst
    with pytest.raises(ValueError, match="hz"):
        RateLimiter(0.0)


def test_real_commands_leave_at_20_hz(standin, clock):
    standin.clock = clock.time
    try:
        robot = real(clock)
        robot.execute((Q0 + [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.3])[None])
        times = np.array([c["time"] for c in robot._robot.calls])
        assert len(times) == 10  # 0.3 / (0.25 x 2.61 / 20) = 9.2
        np.testing.assert_allclose(np.diff(times), 0.05, atol=1e-12)
    finally:
        standin.clock = staticmethod(__import__("time").monotonic)


# --------------------------------------------------------------------------- kinematics and frames


def _rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def test_fk_jacobian_ik_in_the_world_frame_through_T_world_base(clock):
    T = np.eye(4)
    T[:3, :3] = _rot_z(math.pi / 2)
    T[:3, 3] = [1.0, 2.0, 0.5]
    sim = get_registry().create("embodiment", "franka", {})
    robot = make(clock, T_world_base=T.tolist(), workspace_min=[0.8, 2.2, 0.6], workspace_max=[1.2, 2.8, 1.2],
                 dry_run_start_q=Q0.tolist())
    rng = np.random.default_rng(0)
    lim = robot.joint_limits
    for _ in range(3):
        q = lim[:, 0] + (lim[:, 1] - lim[:, 0]) * rng.uniform(0.15, 0.85, 7)
        np.testing.assert_allclose(robot.fk(q), T @ sim.fk(q), atol=1e-12)
        J = robot.jacobian(q)
        eps = 1e-6
        for j in range(7):
            dq = np.zeros(7)
            dq[j] = eps
            Tp, Tm = robot.fk(q + dq), robot.fk(q - dq)
            np.testing.assert_allclose(J[:3, j], (Tp[:3, 3] - Tm[:3, 3]) / (2 * eps), atol=1e-6)
            dR = (Tp[:3, :3] - Tm[:3, :3]) / (2 * eps) @ robot.fk(q)[:3, :3].T
            np.testing.assert_allclose(J[3:, j], [dR[2, 1], dR[0, 2], dR[1, 0]], atol=1e-6)
    # the stand-in pose's EE (0.458, 0.032, 0.272) in the base is (0.968, 2.458, 0.772) in the world
    p = robot.fk(Q0)[:3, 3]
    np.testing.assert_allclose(p, T[:3, :3] @ sim.fk(Q0)[:3, 3] + T[:3, 3], atol=1e-12)
    assert 0.9 < p[0] < 1.0 and 2.4 < p[1] < 2.5
    # ik round trip in the world frame
    target = robot.fk(Q0 + 0.1)
    res = robot.ik(target, Q0)
    assert res.success
    np.testing.assert_allclose(robot.fk(res.q)[:3, 3], target[:3, 3], atol=1e-3)
    # the workspace box is in the world frame: the command is inside it only through T_world_base
    robot.send(np.append(Q0 + 0.01, -1.0))
    base_only = make(clock, workspace_min=[0.8, 2.2, 0.6], workspace_max=[1.2, 2.8, 1.2], dry_run_start_q=Q0.tolist())
    with pytest.raises(SafetyError, match="workspace"):
        base_only.send(np.append(Q0 + 0.01, -1.0))
    # grasp frame: the same fixed offset as the sim franka
    Tg = robot.fk(Q0) @ robot.T_ee_grasp
    np.testing.assert_allclose(robot.grasp_to_ee(Tg), robot.fk(Q0), atol=1e-12)


def test_passes_the_embodiment_conformance_checks(clock):
    from d2f_conformance import all_passed, check_component, format_results

    T = np.eye(4)
    T[:3, :3] = _rot_z(0.3)
    T[:3, 3] = [0.2, -0.1, 0.8]
    robot = make(clock, T_world_base=T.tolist())
    results = check_component(robot, "embodiment")
    assert all_passed(results), format_results(results)


def test_bind_accepts_no_world_or_a_real_one_but_not_a_simulation(clock):
    robot = make(clock)
    robot.bind(None)
    assert robot.world is None
    real_world = object()
    robot.bind(real_world)
    assert robot.world is real_world

    class SimWorld:
        class env:
            sim = object()

    with pytest.raises(ValueError, match="embodiment.plugin=franka"):
        robot.bind(SimWorld())


# --------------------------------------------------------------------------- factory / registry


def test_franka_deoxys_is_its_own_plugin_and_builds_a_dry_run():
    _forget_deoxys()
    from d2f_core.protocols import GRIPPER_CLOSED, GRIPPER_OPEN, GraspingArm

    emb = get_registry().create("embodiment", "franka-deoxys", {})
    assert isinstance(emb, DeoxysFranka) and emb.dry_run and emb.name == "franka-deoxys" and emb.robot == "Panda"
    assert {"hardware", "grasping", "ik"} <= emb.capabilities and emb.dof == 7
    assert isinstance(emb, GraspingArm) and (emb.gripper_open, emb.gripper_closed) == (GRIPPER_OPEN, GRIPPER_CLOSED)
    np.testing.assert_allclose(emb.current_q(), emb.home_q)
    emb2 = get_registry().create("embodiment", "franka-deoxys", {"dry_run": True, "control_hz": 10.0})
    assert isinstance(emb2, DeoxysFranka) and emb2.control_hz == 10.0
    assert "deoxys" not in sys.modules
    # the same Panda kinematics as the simulated franka: grasp frame and fk agree exactly
    sim = get_registry().create("embodiment", "franka", {})
    assert not isinstance(sim, DeoxysFranka)
    np.testing.assert_array_equal(emb.T_ee_grasp, sim.T_ee_grasp)
    np.testing.assert_allclose(emb.fk(Q0), sim.fk(Q0), atol=1e-12)
    T = sim.fk(Q0)
    np.testing.assert_allclose(emb.grasp_to_ee(emb.arm_model.ee_to_grasp(T), 0.0), T, atol=1e-12)
    # a dry-run command: accepted, logged, and the simulated joints follow (gripper -1 = open: 8 cm)
    a = emb.joint_action(emb.current_q(), GRIPPER_OPEN)
    emb.send(a)
    assert emb.command_log[-1]["event"] == "command" and emb.gripper_width() == pytest.approx(0.08)
    # the old spelling says where the backend went
    with pytest.raises(ValueError, match="franka-deoxys"):
        get_registry().create("embodiment", "franka", {"backend": "deoxys"})
    with pytest.raises(ValueError, match="deoxys_config"):
        get_registry().create("embodiment", "franka-deoxys", {"dry_run": False})
