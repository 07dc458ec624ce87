"""Estimators against ground truth: `sim-particles` against known rigid motions (tabletop-2d's block, the
robosuite door turned by its hinge: within 1 mm), `tracking` against the true motion of the tabletop-2d
block moved and pushed by known amounts (within 1 cm), their refusals, and the estimator conformance
checks (each deliberately broken estimator caught by the named check)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from d2f_conformance import check_component
from d2f_core import ObjectFlow, Observation
from d2f_plugins.estimator.sim_particles import SimParticles
from d2f_plugins.estimator.tracking import TrackingEstimator, TrackingOptions, sample_depth
from d2f_plugins.world.tabletop_2d import Tabletop2DOptions, Tabletop2DWorld


def _flow(p0: np.ndarray, visible0: np.ndarray | None = None) -> ObjectFlow:
    """A two-step flow whose first frame is ``p0`` (the estimators only read frame 0)."""
    vis = np.ones((2, len(p0)), bool)
    if visible0 is not None:
        vis[0] = visible0
    return ObjectFlow(points=np.stack([p0, p0 + [0.05, 0.0, 0.0]]).astype(np.float32), visible=vis)


def _block_points(world: Tabletop2DWorld, obs: Observation, n: int = 300) -> np.ndarray:
    """World points on the block's visible faces (its rendered pixels lifted with the rendered depth)."""
    ys, xs = np.nonzero(world.object_mask("block"))
    keep = np.unique(np.linspace(0, len(xs) - 1, n).round().astype(int))
    xy = np.stack([xs[keep], ys[keep]], -1).astype(float)
    return world.camera.backproject(xy, obs.rgbd.depth[ys[keep], xs[keep]])


def _moved(p: np.ndarray, before, after) -> np.ndarray:
    """Points riding on the block from pose ``before`` to ``after`` ((x, y, yaw) metres, radians), by hand."""
    (x0, y0, a0), (x1, y1, a1) = before, after
    c, s = math.cos(a0), math.sin(a0)
    lx = c * (p[:, 0] - x0) + s * (p[:, 1] - y0)  # block frame at `before`
    ly = -s * (p[:, 0] - x0) + c * (p[:, 1] - y0)
    c, s = math.cos(a1), math.sin(a1)
    return np.stack([x1 + c * lx - s * ly, y1 + s * lx + c * ly, p[:, 2]], -1)


def _priv_obs(world) -> Observation:
    return Observation(rgbd=None, joints=np.zeros(3), privileged=world.privileged_state())


# --------------------------------------------------------------------------- sim-particles


def test_sim_particles_follow_the_block_pose_exactly():
    w = Tabletop2DWorld(Tabletop2DOptions(width=160, height=120))
    obs = w.reset(2)
    p0 = _block_points(w, obs, 100)
    vis0 = np.ones(len(p0), bool)
    vis0[:5] = False  # the flow does not know these first-frame positions
    est = SimParticles()
    est.reset(obs, _flow(p0, vis0))
    before = tuple(w.privileged_state()["block_pose"])
    after = (before[0] + 0.04, before[1] - 0.03, before[2] + 0.7)
    w.set_state(block_pose=after, pusher=(0.25, 0.25, 0.2))
    p, v = est.estimate(_priv_obs(w))
    assert p.dtype == np.float32 and p.shape == p0.shape and v.dtype == np.bool_
    np.testing.assert_array_equal(v, vis0)
    err = np.linalg.norm(p[v] - _moved(p0, before, after)[v], axis=1)
    assert err.max() < 1e-5  # metres (float32 rounding); the contract is 1 mm
    np.testing.assert_array_equal(p[~v], p0[~v].astype(np.float32))  # unknown ones stay as the flow has them


def test_sim_particles_refuse_a_world_without_object_pose():
    est = SimParticles()
    flow = _flow(np.zeros((3, 3)))
    cloth = Observation(rgbd=None, joints=np.zeros(1), privileged={"task": "cover_bowl", "cloth_centroid": [0, 0, 1]})
    with pytest.raises(ValueError, match=r"^observation.privileged\['object_pose'\]: .*task 'cover_bowl' has none"
                                         r".*estimator: \{plugin: tracking\}.*render_steps: true"):
        est.reset(cloth, flow)
    bad = Observation(rgbd=None, joints=np.zeros(1), privileged={"object_pose": np.diag([1.0, 1, 2, 1]).tolist()})
    with pytest.raises(ValueError, match=r"^observation.privileged\['object_pose'\]: not a rigid transform"):
        est.reset(bad, flow)
    with pytest.raises(ValueError, match=r"^flow: "):
        est.reset(bad, np.zeros((2, 3, 3)))
    with pytest.raises(RuntimeError, match="reset"):
        SimParticles().estimate(bad)


# --------------------------------------------------------------------------- tracking


def _tracking_setup(seed: int, pusher=(0.25, 0.25, 0.2), n: int = 300):
    w = Tabletop2DWorld(Tabletop2DOptions())
    w.reset(seed)
    w.set_state(pusher=pusher)
    obs = w.render()
    o = Observation(rgbd=obs, joints=np.zeros(3), state={"ee_pos": list(pusher)}, privileged=w.privileged_state())
    p0 = _block_points(w, o, n)
    est = TrackingEstimator()
    est.reset(o, _flow(p0))
    return w, est, p0, tuple(w.privileged_state()["block_pose"])


def _live(w: Tabletop2DWorld) -> Observation:
    return Observation(rgbd=w.render(), joints=np.zeros(3), privileged=w.privileged_state())


def test_tracking_follows_the_block_moved_by_known_amounts():
    w, est, p0, before = _tracking_setup(0)
    p, v = est.estimate(_live(w))  # the reset frame again: exactly the flow's first frame
    assert v.mean() > 0.85
    np.testing.assert_allclose(p[v], p0[v], atol=1e-6)
    # 12 steps of 5 mm along x, 3 mm along y and 0.02 rad (7 cm and 14 degrees in all)
    for k in range(1, 13):
        after = (before[0] + 0.005 * k, before[1] + 0.003 * k, before[2] + 0.02 * k)
        w.set_state(block_pose=after)
        p, v = est.estimate(_live(w))
    truth = _moved(p0, before, after)
    err = np.linalg.norm(p - truth, axis=1)
    assert v.mean() > 0.8, v.mean()
    assert err[v].max() < 0.01, err[v].max()  # metres
    assert np.median(err[v]) < 0.003
    assert np.median(np.linalg.norm(truth - p0, axis=1)) > 0.06  # it did move: not passing by standing still


@pytest.mark.parametrize("seed", [0, 1])
def test_tracking_follows_the_block_pushed_by_the_pusher(seed):
    w = Tabletop2DWorld(Tabletop2DOptions())
    w.reset(seed)
    bx, by, yaw = w.privileged_state()["block_pose"]
    c, s = math.cos(yaw), math.sin(yaw)
    start = np.array([bx - 0.07 * c, by - 0.07 * s, 0.02])  # 1 cm gap behind the block's -x face, pushing +x
    w, est, p0, before = _tracking_setup(seed, pusher=start)
    for k in range(1, 11):
        obs = w.step(start + 0.01 * k * np.array([c, s, 0.0]))  # the pusher advances 1 cm per step
        p, v = est.estimate(obs)
    after = tuple(w.privileged_state()["block_pose"])
    assert math.hypot(after[0] - before[0], after[1] - before[1]) > 0.07  # pushed 8-9 cm
    truth = _moved(p0, before, after)
    err = np.linalg.norm(p - truth, axis=1)[v]
    assert v.mean() > 0.8, v.mean()
    assert np.mean(err < 0.01) > 0.97, np.sort(err)[-10:]
    assert np.median(err) < 0.003 and err.max() < 0.02


def test_tracking_marks_untrackable_and_lost_particles_and_keeps_their_positions():
    w, est, p0, before = _tracking_setup(1, n=50)
    hidden = np.array([[0.0, 0.0, -0.05], [5.0, 0.0, 0.0], [0.0, -1.0, 0.0]])  # under the table, off-image, behind
    pts = np.concatenate([p0, hidden])
    est.reset(_live(w), _flow(pts))
    p, v = est.estimate(_live(w))
    assert not v[-3:].any() and v[:-3].mean() > 0.8
    np.testing.assert_array_equal(p[-3:], hidden.astype(np.float32))
    # the block jumps 15 cm in one step: every particle is lost and stays where it was last seen
    last = p.copy()
    w.set_state(block_pose=(before[0] + 0.15, before[1], before[2]))
    p, v = est.estimate(_live(w))
    assert not v.any()
    np.testing.assert_array_equal(p, last)


def test_tracking_needs_the_live_camera_every_step():
    w = Tabletop2DWorld(Tabletop2DOptions(width=64, height=48, render_observations=False))
    obs = w.reset(0)
    assert obs.rgbd is None
    with pytest.raises(ValueError, match=r"^observation.rgbd: .*render_steps: true.*render_observations: true"):
        TrackingEstimator().reset(obs, _flow(np.zeros((3, 3))))
    est = TrackingEstimator()
    est.reset(_live(w), _flow(np.zeros((3, 3))))
    with pytest.raises(ValueError, match=r"^observation.rgbd: "):
        est.estimate(obs)
    w2 = Tabletop2DWorld(Tabletop2DOptions(width=32, height=24))
    with pytest.raises(ValueError, match=r"^observation.rgbd: the image is 32x24 but the episode started with 64x48"):
        est.estimate(_live(w2))
    with pytest.raises(ValueError):
        TrackingOptions(window=3)  # extra="forbid"


def test_sample_depth_uses_the_nearest_pixel_at_depth_edges():
    d = np.array([[1.0, 1.0, 2.0], [1.0, 1.0, 2.0], [1.0, 1.0, 2.0]], np.float32)
    val, ok = sample_depth(d, np.array([[0.5, 0.5], [1.4, 1.0], [1.6, 1.0], [5.0, 1.0]]), 0.01)
    np.testing.assert_allclose(val[:3], [1.0, 1.0, 2.0])  # smooth: bilinear; edge: nearest pixel, never 1.4 / 1.6
    np.testing.assert_array_equal(ok, [True, True, True, False])


# --------------------------------------------------------------------------- robosuite open_door


@pytest.mark.sim
def test_sim_particles_turn_with_the_door_hinge():
    pytest.importorskip("robosuite")
    from d2f_plugins.world.robosuite_world import RobosuiteWorldOptions, make_world

    w = make_world(RobosuiteWorldOptions(task="open_door", width=160, height=120))
    try:
        obs = w.reset(0)
        m, d, env = w.model, w.data, w.env
        T_door = np.array(obs.privileged["object_pose"])
        np.testing.assert_allclose(T_door[:3, 3], obs.privileged["door"]["pos"])
        ys, xs = np.nonzero(w.object_mask("door"))
        keep = np.linspace(0, len(xs) - 1, 200).round().astype(int)
        p0 = w.camera.backproject(np.stack([xs[keep], ys[keep]], -1).astype(float), obs.rgbd.depth[ys[keep], xs[keep]])
        est = SimParticles()
        est.reset(obs, _flow(p0))
        j = m.joint("Door_hinge").id
        axis, anchor = np.array(d.xaxis[j]), np.array(d.xanchor[j])  # world frame, before turning
        theta = 0.3
        d.qpos[env.hinge_qpos_addr] = theta
        w._mj.mj_forward(m, d)
        p, v = est.estimate(_priv_obs(w))
        # the truth: a rotation by theta about the hinge axis through its anchor (Rodrigues)
        K = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
        R = np.eye(3) + math.sin(theta) * K + (1 - math.cos(theta)) * K @ K
        truth = (p0 - anchor) @ R.T + anchor
        assert v.all() and np.linalg.norm(p - truth, axis=1).max() < 1e-3  # metres
        assert np.linalg.norm(truth - p0, axis=1).max() > 0.1  # the door's far edge moved > 10 cm
        cover = make_world(RobosuiteWorldOptions(task="cover_bowl", width=64, height=48))
        try:
            assert "object_pose" not in cover.capabilities
            with pytest.raises(ValueError, match=r"task 'cover_bowl' has none.*tracking"):
                est.reset(cover.reset(0), _flow(p0))
        finally:
            cover.close()
    finally:
        w.close()


# --------------------------------------------------------------------------- conformance


def _statuses(component):
    return {r.check: (r.status, r.message) for r in check_component(component, "estimator")}


@pytest.mark.parametrize("make", [SimParticles, TrackingEstimator], ids=["sim-particles", "tracking"])
def test_shipped_estimators_pass_the_conformance_checks(make):
    res = _statuses(make())
    assert all(s == "passed" for s, _ in res.values()), res


class Float64Particles(SimParticles):
    def estimate(self, observation):
        p, v = super().estimate(observation)
        return p.astype(np.float64), v


class StandingStill(SimParticles):
    """Never moves the particles."""

    def estimate(self, observation):
        p, v = super().estimate(observation)
        return self._p0.copy(), v


class Shuffled(SimParticles):
    def estimate(self, observation):
        p, v = super().estimate(observation)
        return p[::-1].copy(), v


class Lenient(SimParticles):
    """Takes a bare array as the flow."""

    def reset(self, observation, flow):
        if isinstance(flow, np.ndarray):
            flow = ObjectFlow(points=flow.astype(np.float32), visible=np.ones(flow.shape[:2], bool))
        super().reset(observation, flow)


class MutatesState(SimParticles):
    def estimate(self, observation):
        observation.state["estimated"] = True
        return super().estimate(observation)


@pytest.mark.parametrize("broken, check, fragment", [
    (Float64Particles, "estimator_output_types", "expected float32"),
    (StandingStill, "estimator_known_motion", "did not move"),
    (Shuffled, "estimator_starts_at_the_flow", "same N and order"),
    (Lenient, "estimator_rejects_malformed_input", "accepted a bare"),
    (MutatesState, "estimator_no_input_mutation", "modified observation.state"),
], ids=["float64", "standing-still", "shuffled", "lenient", "mutates-state"])
def test_estimator_checks_catch_broken_estimators(broken, check, fragment):
    status, message = _statuses(broken())[check]
    assert status == "failed" and fragment in message, message
