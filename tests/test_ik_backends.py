"""IK backends ``mujoco`` / ``pybullet`` (plugins/solver/ik_backends.py) against ground truth.

Ground truth: the embodiment's own MuJoCo FK (robosuite's Panda) for round trips and calibration
agreement; the two models' fixed transforms read independently -- the URDF's fixed-joint origins
(panda_joint8, panda_hand_joint, panda_grasptarget_hand) and MuJoCo's body/site poses -- for the
calibrated T_pblink_ee / T_world_pbbase; known rigid transforms applied to the embodiment's FK for
the calibration fit; a joint-convention change that calibration must reject.
"""

from __future__ import annotations

import builtins
import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest

pytest.importorskip("robosuite")
pytest.importorskip("mujoco")

pytestmark = pytest.mark.sim

from d2f_plugins.embodiment.robosuite_robots import FrankaOptions, _franka  # noqa: E402
from d2f_plugins.solver.ik_backends import BACKENDS, make_ik  # noqa: E402

try:
    import pybullet  # noqa: F401
    HAVE_PYBULLET = True
except ImportError:  # pragma: no cover
    HAVE_PYBULLET = False
needs_pybullet = pytest.mark.skipif(not HAVE_PYBULLET, reason="pybullet not installed")


def pose_err(A: np.ndarray, B: np.ndarray) -> tuple[float, float]:
    dp = float(np.linalg.norm(A[:3, 3] - B[:3, 3]))
    c = (float(np.trace(A[:3, :3].T @ B[:3, :3])) - 1.0) / 2.0
    return dp, math.acos(min(1.0, max(-1.0, c)))


def random_q(emb, rng, margin=0.05):
    lo, hi = emb.joint_limits[:, 0], emb.joint_limits[:, 1]
    return lo + (hi - lo) * rng.uniform(margin, 1 - margin, size=emb.dof)


def rot_z(a: float) -> np.ndarray:
    T = np.eye(4)
    T[:2, :2] = [[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]
    return T


def trans(x: float, y: float, z: float) -> np.ndarray:
    T = np.eye(4)
    T[:3, 3] = (x, y, z)
    return T


@pytest.fixture(scope="module")
def franka():
    return _franka(FrankaOptions())


@pytest.fixture(scope="module")
def backends(franka):
    out = {"mujoco": make_ik("mujoco", franka)}
    if HAVE_PYBULLET:
        out["pybullet"] = make_ik("pybullet", franka)
    yield out
    for b in out.values():
        b.close()


def mujoco_pose(kin, name: str, site: bool = False) -> np.ndarray:
    """World pose of a body (or site) of the embodiment's private MuJoCo data (after an fk call)."""
    import mujoco

    d, m = kin.data, kin.model
    T = np.eye(4)
    if site:
        i = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, name)
        T[:3, :3], T[:3, 3] = d.site_xmat[i].reshape(3, 3), d.site_xpos[i]
    else:
        i = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, name)
        T[:3, :3], T[:3, 3] = d.xmat[i].reshape(3, 3), d.xpos[i]
    return T


def urdf_fixed(urdf: str, joint: str) -> np.ndarray:
    """The origin of a fixed URDF joint (xyz, rpy) as a 4x4 transform, read from the file."""
    from scipy.spatial.transform import Rotation

    el = ET.parse(urdf).getroot().find(f"joint[@name='{joint}']/origin")
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("xyz", [float(v) for v in el.get("rpy", "0 0 0").split()]).as_matrix()
    T[:3, 3] = [float(v) for v in el.get("xyz", "0 0 0").split()]
    return T


# --------------------------------------------------------------------------- calibration


@needs_pybullet
def test_calibration_agrees_with_mujoco_fk_on_50_random_q(franka, backends):
    pb = backends["pybullet"]
    rng = np.random.default_rng(123)
    errs = np.array([pose_err(pb.fk(q), franka.fk(q)) for q in (random_q(franka, rng, 0.0) for _ in range(50))])
    # measured: 7e-8 m, 4e-7 rad; contract 1 mm / 0.01 rad
    assert errs[:, 0].max() < 1e-5 and errs[:, 1].max() < 1e-4, errs.max(axis=0)
    assert pb.calibration_error[0] < 1e-5 and pb.calibration_error[1] < 1e-4


@needs_pybullet
def test_calibrated_transforms_equal_the_models_fixed_offsets(franka, backends):
    pb = backends["pybullet"]
    assert pb.link == "panda_grasptarget"
    # URDF: link7 -> grasptarget through the fixed joints, read from the file
    T_l7_gt = (urdf_fixed(pb.urdf, "panda_joint8") @ urdf_fixed(pb.urdf, "panda_hand_joint")
               @ urdf_fixed(pb.urdf, "panda_grasptarget_hand"))
    # MuJoCo: link7 -> grip site, and the world pose of link0 (the URDF's base link)
    franka.fk(franka.home_q)
    kin = franka.kinematics
    T_l7_site = np.linalg.inv(mujoco_pose(kin, "robot0_link7")) @ mujoco_pose(kin, franka.ee_site, site=True)
    expected_B = np.linalg.inv(T_l7_gt) @ T_l7_site
    assert np.allclose(pb.T_pblink_ee, expected_B, atol=1e-6)
    assert np.allclose(pb.T_world_pbbase, mujoco_pose(kin, "robot0_link0"), atol=1e-6)
    # and the numbers themselves: -90 deg about z (robosuite's hand quat adds 0.5 mrad), 8.5 mm back
    assert np.allclose(pb.T_pblink_ee[:3, 3], [0.0, 0.0, -0.0085], atol=1e-6)
    assert pose_err(pb.T_pblink_ee, trans(0, 0, -0.0085) @ rot_z(-math.pi / 2))[1] < 1e-3
    assert np.allclose(pb.T_world_pbbase, np.eye(4), atol=1e-6)  # standalone: root body = link0 = origin


class Moved:
    """The franka embodiment seen from another world frame: fk = G @ franka.fk, optionally with a
    joint offset (a different joint convention), and a T_world_base hint that may be off."""

    def __init__(self, emb, G, hint, dq=None):
        self.emb, self.G, self.T_world_base = emb, G, hint
        self.dq = np.zeros(7) if dq is None else dq
        self.name, self.dof, self.joint_limits, self.ik_settings = "moved", 7, emb.joint_limits, emb.ik_settings

    def fk(self, q):
        return self.G @ self.emb.fk(np.asarray(q) + self.dq)


@needs_pybullet
def test_calibration_recovers_a_known_base_transform(franka):
    from scipy.spatial.transform import Rotation

    G = np.eye(4)
    G[:3, :3] = Rotation.from_rotvec([0.1, -0.2, 1.3]).as_matrix()
    G[:3, 3] = (0.4, -1.2, 0.75)
    hint = G @ trans(0.05, -0.03, 0.02) @ rot_z(0.15)  # a wrong initial guess: least squares must fix it
    with make_ik("pybullet", Moved(franka, G, hint)) as pb:
        assert np.allclose(pb.T_world_pbbase, G, atol=1e-6)
        rng = np.random.default_rng(7)
        for _ in range(10):
            q = random_q(franka, rng)
            p, r = pose_err(pb.fk(q), G @ franka.fk(q))
            assert p < 1e-5 and r < 1e-4


@needs_pybullet
def test_calibration_rejects_a_different_joint_convention(franka):
    with pytest.raises(ValueError, match="does not match"):
        make_ik("pybullet", Moved(franka, np.eye(4), np.eye(4), dq=np.array([0, 0.3, 0, 0, 0, 0, 0])))


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("backend", BACKENDS)
def test_round_trip_from_noisy_seed(franka, backends, backend):
    if backend not in backends:
        pytest.skip("pybullet not installed")
    ik = backends[backend]
    assert ik.name == backend
    rng = np.random.default_rng(2024)
    lo, hi = franka.joint_limits[:, 0], franka.joint_limits[:, 1]
    for i in range(20):
        q = random_q(franka, rng)
        T = franka.fk(q)
        q_init = np.clip(q + rng.normal(0.0, 0.2, 7), lo, hi)
        res = ik.ik(T, q_init)
        assert res.q.shape == (7,) and np.all(res.q >= lo) and np.all(res.q <= hi)
        p, r = pose_err(franka.fk(res.q), T)  # re-measured here: the reported errors are true
        assert abs(p - res.position_error) < 1e-9 and abs(r - res.rotation_error) < 1e-6
        assert res.success, (i, p, r)
        assert p < 2e-3 and r < 2e-2, (i, p, r)
        assert np.abs(res.q - q_init).max() < 1.5  # stays in q_init's neighbourhood


@needs_pybullet
def test_pybullet_position_only(franka, backends):
    """Only the end-effector origin counts; it is 8.5 mm off the URDF link's origin, so aiming the
    link with the target's orientation would miss by up to 17 mm once the orientation is free."""
    pb = backends["pybullet"]
    rng = np.random.default_rng(3)
    for i in range(8):
        q = random_q(franka, rng)
        T = franka.fk(q) @ rot_z(1.0)  # orientation changed, position kept
        res = pb.ik(T, franka.home_q, position_only=True)
        p = pose_err(franka.fk(res.q), T)[0]
        assert abs(p - res.position_error) < 1e-9
        assert res.success and p < 1e-3, (i, p)


@needs_pybullet
def test_tolerances_come_from_options(franka):
    rng = np.random.default_rng(11)
    q = random_q(franka, rng)
    with make_ik("pybullet", franka, position_tolerance=1e-13, rotation_tolerance=1e-13) as strict:
        res = strict.ik(franka.fk(q), q + 0.05)
    assert res.position_error < 1e-5 and not res.success  # reached, but not to 1e-13
    loose = make_ik("mujoco", franka, position_tolerance=0.05, rotation_tolerance=0.5)
    T = franka.fk(q) @ trans(0.0, 0.0, 0.03)  # reachable; a 3 cm miss would already pass
    res = loose.ik(T, q)
    assert res.success and res.position_error < 0.05
    assert loose.position_tolerance == 0.05 and make_ik("mujoco", franka).position_tolerance == \
        franka.ik_settings.position_tolerance


@pytest.mark.parametrize("backend", BACKENDS)
def test_unreachable_pose_fails_with_a_measured_error(franka, backends, backend):
    if backend not in backends:
        pytest.skip("pybullet not installed")
    T = franka.fk(franka.home_q)
    T[:3, 3] += (2.0, 0.0, 0.0)  # 2 m away: the Panda reaches ~0.86 m from joint 2
    res = backends[backend].ik(T, franka.home_q)
    assert not res.success
    assert res.position_error > 1.0
    lo, hi = franka.joint_limits[:, 0], franka.joint_limits[:, 1]
    assert np.all(res.q >= lo) and np.all(res.q <= hi)
    assert abs(pose_err(franka.fk(res.q), T)[0] - res.position_error) < 1e-9


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_inputs_name_the_argument(franka, backends, backend):
    if backend not in backends:
        pytest.skip("pybullet not installed")
    ik = backends[backend]
    T = franka.fk(franka.home_q)
    with pytest.raises(ValueError, match="T_world_ee"):
        ik.ik(T[:3], franka.home_q)
    with pytest.raises(ValueError, match="T_world_ee"):
        ik.ik(np.diag([1.0, 1.0, -1.0, 1.0]), franka.home_q)  # a reflection, not a rotation
    with pytest.raises(ValueError, match="q_init"):
        ik.ik(T, franka.home_q[:6])
    with pytest.raises(ValueError, match="q_init"):
        ik.ik(T, np.full(7, np.nan))


def test_unknown_backend_and_option(franka):
    with pytest.raises(ValueError, match="'mujoco', 'pybullet'"):
        make_ik("ikfast", franka)
    with pytest.raises(ValueError, match="refinements"):
        make_ik("mujoco", franka, refinements=3)  # a pybullet-only option
    with pytest.raises(ValueError, match="position_tolerance"):
        make_ik("mujoco", franka, position_tolerance=-1.0)
    if HAVE_PYBULLET:
        with pytest.raises(ValueError, match="link: 'panda_wrist' is not a link.*panda_hand"):
            make_ik("pybullet", franka, link="panda_wrist")


def test_missing_pybullet_gives_an_install_hint(franka, monkeypatch):
    from d2f_core.registry import PluginUnavailableError

    real_import = builtins.__import__

    def no_pybullet(name, *args, **kwargs):
        if name == "pybullet" or name.startswith("pybullet."):
            raise ImportError("No module named 'pybullet'")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(__import__("sys").modules, "pybullet", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_pybullet)
    with pytest.raises(PluginUnavailableError, match=r"pip install pybullet.*'mujoco'"):
        make_ik("pybullet", franka)
    assert make_ik("mujoco", franka).ik(franka.fk(franka.home_q), franka.home_q).success


@needs_pybullet
def test_close_disconnects_the_private_client(franka):
    import pybullet as p

    a, b = make_ik("pybullet", franka, calibration_samples=3), make_ik("pybullet", franka, calibration_samples=3)
    assert a._client != b._client
    cid = a._client
    a.close()
    a.close()  # idempotent
    assert not p.getConnectionInfo(physicsClientId=cid)["isConnected"]
    assert b.ik(franka.fk(franka.home_q), franka.home_q).success  # the other client is untouched
    with pytest.raises(RuntimeError, match="closed"):
        a.ik(franka.fk(franka.home_q), franka.home_q)
    b.close()


# --------------------------------------------------------------------------- bound world


@needs_pybullet
def test_bound_world_bread_in_bowl():
    """In a robosuite world the robot's base is at (-0.56, 0, 0.912): both backends work in that frame."""
    from d2f_plugins.world.robosuite_world import RobosuiteWorldOptions, make_world

    world = make_world(RobosuiteWorldOptions(task="bread_in_bowl", width=64, height=48))
    try:
        world.reset(0)
        emb = world.embodiment
        assert np.allclose(emb.T_world_base[:3, 3], [-0.56, 0.0, 0.912], atol=1e-6)
        with make_ik("pybullet", emb) as pb:
            kin = emb.kinematics
            emb.fk(emb.home_q)
            assert np.allclose(pb.T_world_pbbase, mujoco_pose(kin, "robot0_link0"), atol=1e-6)
            assert np.allclose(pb.T_world_pbbase, emb.T_world_base, atol=1e-6)  # link0 sits on the root
            rng = np.random.default_rng(5)
            for _ in range(20):
                q = random_q(emb, rng, 0.0)
                p, r = pose_err(pb.fk(q), emb.fk(q))
                assert p < 1e-5 and r < 1e-4
            mj = make_ik("mujoco", emb)
            lo, hi = emb.joint_limits[:, 0], emb.joint_limits[:, 1]
            for _ in range(5):
                q = random_q(emb, rng)
                T = emb.fk(q)
                q_init = np.clip(q + rng.normal(0.0, 0.2, 7), lo, hi)
                for ik in (mj, pb):
                    res = ik.ik(T, q_init)
                    p, r = pose_err(emb.fk(res.q), T)
                    assert res.success and p < 2e-3 and r < 2e-2, (ik.name, p, r)
    finally:
        world.close()
