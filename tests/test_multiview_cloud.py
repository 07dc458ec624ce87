"""multiview-cloud: the Push-T estimator from the world's 4 RGB-D views, against the T's true pose."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("gym_pusht")

from d2f_core import ObjectFlow  # noqa: E402
from d2f_plugins.estimator.multiview_cloud import (MultiviewCloudEstimator, MultiviewCloudOptions,  # noqa: E402
                                                   voxel_sample)
from d2f_plugins.world import pusht_scene as S  # noqa: E402
from d2f_plugins.world.pusht import PushTOptions, PushTWorld  # noqa: E402


def _flow_on_top(pose) -> tuple[ObjectFlow, np.ndarray]:
    """A one-step flow: the T's top face (7.5 mm grid) at ``pose``; returns it and the local points."""
    local = S.t_surface_points(0.0075, sides=False)[0]
    pts = S.to_world(local, pose).astype(np.float32)[None]
    return ObjectFlow(points=pts, visible=np.ones(pts.shape[:2], bool)), local


def test_voxel_sample_keeps_one_point_per_voxel():
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 0.1, size=(5000, 3))
    out = voxel_sample(pts, 0.015, rng)
    keys = np.floor(out / 0.015).astype(int)
    assert len(np.unique(keys, axis=0)) == len(out)                  # one per voxel
    assert len(out) == len(np.unique(np.floor(pts / 0.015).astype(int), axis=0))  # every occupied voxel
    assert np.isin(out.view([("", out.dtype)] * 3), pts.view([("", pts.dtype)] * 3)).all()  # input points


@pytest.mark.parametrize("state", [2, 5])
def test_estimate_follows_the_true_pose_through_pushes(state):
    world = PushTWorld(PushTOptions(initial_state=state, render_observations=False))
    obs = world.reset(0)
    pose0 = tuple(obs.privileged["block_pose"])
    flow, local = _flow_on_top(pose0)
    est = MultiviewCloudEstimator()
    est.reset(obs, flow)
    rng = np.random.default_rng(state)
    from d2f_plugins.dynamics.heuristic import HeuristicPushDynamics

    sampler = HeuristicPushDynamics()
    moved = 0.0
    for _ in range(5):
        P, vis = est.estimate(obs)
        truth = S.to_world(local, tuple(obs.privileged["block_pose"]))
        err = np.linalg.norm(P - truth, axis=1)
        assert vis.mean() > 0.8, est.info
        assert err[vis].mean() < 0.01, (err.mean(), est.info)       # the bound: within 1 cm
        a = sampler.sample_actions(truth.astype(np.float32), 1, rng)[0]
        before = np.array(obs.privileged["block_pose"])
        obs = world.push(a)
        moved += float(np.linalg.norm(np.array(obs.privileged["block_pose"])[:2] - before[:2]))
    P, vis = est.estimate(obs)
    truth = S.to_world(local, tuple(obs.privileged["block_pose"]))
    assert np.linalg.norm(P - truth, axis=1)[vis].mean() < 0.01
    assert moved > 0.02  # the T really moved (the check is not of a standing T)


def test_robot_points_are_filtered_and_a_missing_view_is_a_clear_error():
    world = PushTWorld(PushTOptions(initial_state=3, render_observations=False))
    obs = world.reset(0)
    pose = tuple(obs.privileged["block_pose"])
    centre = S.t_centre(pose)
    far = centre + 0.12 * (centre / max(np.linalg.norm(centre), 1e-6)) if np.linalg.norm(centre) > 0.05 else \
        centre + np.array([0.12, 0.0])
    world.set_state(pusher=(float(far[0]), float(far[1]), 0.005))
    obs = world.step(np.array([far[0], far[1], 0.005]))
    est = MultiviewCloudEstimator(MultiviewCloudOptions())
    cloud = est.cloud(obs)
    tip = np.asarray(obs.state["ee_pos"])
    assert not np.any(np.hypot(cloud[:, 0] - tip[0], cloud[:, 1] - tip[1]) <= 0.015)
    raw = MultiviewCloudEstimator(MultiviewCloudOptions(robot_radius=0.0)).cloud(obs)
    assert np.any(np.hypot(raw[:, 0] - tip[0], raw[:, 1] - tip[1]) <= 0.015)  # the pusher is in the raw cloud

    from d2f_core import Observation

    bare = Observation(rgbd=None, joints=np.zeros(3), state={})
    flow, _ = _flow_on_top(pose)
    est.reset(obs, flow)
    with pytest.raises(ValueError, match=r"state\['views'\].*multiview"):
        est.estimate(bare)
