"""Push-T learned dynamics: ``particle`` (a pure-torch PTv3-style network on 1.5 cm model particles) and
``pose`` (fitted T pose + push -> change of pose).

Ground truth for the learning checks is ``heuristic`` with ``rotation="quasi-static"`` (a sticking point
push with an ellipsoidal limit surface, pusher radius 1.5 cm) on the T's top-face particles at random
poses, with its own contact-push sampler; the learned models, trained for seconds on a few hundred such
transitions, must beat the paper's heuristic baseline (``rotation="none"``) on held-out transitions.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from d2f_core.registry import get_registry  # noqa: E402
from d2f_core.types import DataError  # noqa: E402
from d2f_plugins.dynamics import ptv3_lite  # noqa: E402
from d2f_plugins.dynamics.heuristic import HeuristicOptions, HeuristicPushDynamics  # noqa: E402
from d2f_plugins.dynamics.particle import (TIE, ParticleDynamics, ParticleOptions, estimate_normals,  # noqa: E402
                                           rigidify, voxel_anchor, voxel_downsample)
from d2f_plugins.dynamics.pose import PoseDynamics, PoseOptions, rigid_motion  # noqa: E402
from d2f_plugins.world import pusht_scene as scene  # noqa: E402

GT = HeuristicPushDynamics(HeuristicOptions(rotation="quasi-static", pusher_radius=0.015))
TOP = scene.t_surface_points(0.005, sides=False)[0]


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def transitions(k: int, seed: int) -> dict[str, np.ndarray]:
    """``k`` quasi-static pushes of the T's top particles at random poses (the ground truth)."""
    rng = np.random.default_rng(seed)
    P, A, Q = [], [], []
    for _ in range(k):
        pose = (rng.uniform(-0.15, 0.15), rng.uniform(-0.15, 0.15), rng.uniform(-np.pi, np.pi))
        p = scene.to_world(TOP, pose)
        a = GT.sample_actions(p, 1, rng)
        P.append(p)
        A.append(a[0])
        Q.append(GT.predict(p, a)[0])
    return {"points": np.array(P, np.float32), "actions": np.array(A), "next_points": np.array(Q, np.float32)}


def mean_error(model, data) -> float:
    """Mean particle distance (metres) between predicted and true next particles, one transition at a time."""
    errs = [np.linalg.norm(model.predict(data["points"][i], data["actions"][i:i + 1])[0] - data["next_points"][i],
                           axis=-1).mean() for i in range(len(data["actions"]))]
    return float(np.mean(errs))


def untrained(**kw) -> ParticleDynamics:
    m = ParticleDynamics(ParticleOptions(checkpoint=None, allow_untrained=True, **kw))
    m.set_stats(0.035, 0.03, 0.02)
    return m


# --------------------------------------------------------------------------- features


def test_particle_features_shapes_and_values():
    m = untrained()
    pts = scene.to_world(TOP, (0.03, -0.02, 0.6)).astype(np.float32)
    acts = np.array([[0.1, 0.0, -0.02, 0.0], [-0.05, 0.08, 0.01, -0.03], [0.0, 0.0, 0.0, 0.0]])
    f = m.features(pts, acts)
    x, model, R = f["features"], f["model"], f["frames"]
    M = len(model)
    assert x.shape == (3, M, 14) and 25 <= M <= 60 and f["near"].shape == (len(pts),) and R.shape == (3, 2, 2)
    c = pts[:, :2].astype(np.float64).mean(0)
    np.testing.assert_allclose(f["centroid"], [c[0], c[1], 0.0], atol=1e-9)
    # the push frames: rotations taking the push direction to +x (a zero push: the identity)
    for b in range(3):
        np.testing.assert_allclose(R[b] @ R[b].T, np.eye(2), atol=1e-12)
        assert np.linalg.det(R[b]) > 0
    np.testing.assert_allclose(R[0] @ acts[0, 2:], [0.02, 0.0], atol=1e-12)
    np.testing.assert_allclose(R[1] @ acts[1, 2:], [math.hypot(0.01, 0.03), 0.0], atol=1e-12)
    np.testing.assert_array_equal(R[2], np.eye(2))
    # position: xy relative to the contact point in the push frame, z as is, over the statistic `pos`
    for b in range(3):
        np.testing.assert_allclose(x[b, :, :2] * 0.035, (model[:, :2] - acts[b, :2]) @ R[b].T, atol=1e-6)
    np.testing.assert_allclose(x[0, :, 2] * 0.035, scene.T_HEIGHT, atol=1e-6)
    assert np.all(x[..., 3:6] == 0.5)                                   # constant RGB
    np.testing.assert_allclose(x[..., 6:9], np.broadcast_to([0.0, 0.0, 1.0], x[..., 6:9].shape), atol=1e-6)
    # push parameters, in the push frame (contact at its origin, push along +x): identical for every particle
    assert np.all(x[:, :, 9:] == x[:, :1, 9:])
    L = np.hypot(acts[:, 2], acts[:, 3])
    expect = np.concatenate([np.zeros((3, 2)), L[:, None] / 0.03, np.zeros((3, 1)), L[:, None] / 0.03], 1)
    np.testing.assert_allclose(x[:, 0, 9:], expect, atol=1e-6)
    # every point is carried by its nearest model particle
    d = np.linalg.norm(pts[:, None].astype(np.float64) - model[None], axis=-1)
    np.testing.assert_allclose(d[np.arange(len(pts)), f["near"]], d.min(1), atol=TIE)


def test_normals_top_up_sides_outward():
    pts, true = scene.t_surface_points(0.005, sides=True)
    pose = (0.05, 0.02, 1.1)
    world = scene.to_world(pts, pose)
    R = scene.rotation2(pose[2])
    true_w = true.copy()
    true_w[:, :2] = true[:, :2] @ R.T
    n = estimate_normals(world, 10)
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0, atol=1e-9)
    cos = (n * true_w).sum(1)
    top = true[:, 2] > 0.5
    interior = top & scene.inside_t(pts[:, :2], pad=-0.011)   # away from the top face's rim
    assert np.all(cos[interior] > 0.999)
    assert np.mean(cos[~top] > 0.0) > 0.9                     # sides: outward, even under the bar (concave)
    assert np.mean(cos[~top] > 0.9) > 0.65                    # and horizontal, but where edges mix
    assert np.all(estimate_normals(world[:2]) == [0.0, 0.0, 1.0])  # too few points: up


def test_voxel_downsample_keeps_one_point_per_voxel():
    rng = np.random.default_rng(0)
    pts = rng.uniform(-0.05, 0.05, size=(500, 3))
    anchor = np.array([0.003, -0.002, 0.0])
    keys = np.floor((pts - anchor) / 0.015).astype(int)
    occupied = {tuple(k) for k in keys}
    for r in (None, np.random.default_rng(1)):
        idx = voxel_downsample(pts, 0.015, anchor, r)
        chosen = [tuple(k) for k in keys[idx]]
        assert len(chosen) == len(set(chosen)) == len(occupied) and set(chosen) == occupied
    # deterministic choice: the member nearest its voxel's mean (within TIE, 1 micrometre: ties to the first)
    idx = voxel_downsample(pts, 0.015, anchor)
    for i in idx[:20]:
        members = np.all(keys == keys[i], axis=1)
        mean = pts[members].mean(0)
        assert np.linalg.norm(pts[i] - mean) <= np.linalg.norm(pts[members] - mean, axis=1).min() + TIE
    # the particle model's default is the paper's 1.5 cm, its voxel layers centred on z = 0, 1.5 cm, 3 cm
    m = untrained()
    pts, _ = scene.t_surface_points(0.005, sides=True)
    T = scene.to_world(pts, (0.0, 0.0, 0.3))
    T[:, 2] += np.random.default_rng(0).normal(0.0, 0.0005, len(T))      # depth noise: the top is not split
    model = m.features(T.astype(np.float32), np.zeros((1, 4)))["model"]
    c = T[:, :2].mean(0)
    np.testing.assert_allclose(voxel_anchor(np.array([c[0], c[1], 0.0]), 0.015), [c[0], c[1], -0.0075])
    mk = np.floor((model - [c[0], c[1], -0.0075]) / 0.015).astype(int)
    assert len({tuple(k) for k in mk}) == len(mk)
    assert len(mk) == len({tuple(k) for k in np.floor((T - [c[0], c[1], -0.0075]) / 0.015).astype(int)})
    top = pts[:, 2] > scene.T_HEIGHT - 1e-9             # the top face, with its noise, is one layer of voxels
    assert set(np.floor((T[top, 2] + 0.0075) / 0.015).astype(int)) == {2}


# --------------------------------------------------------------------------- equivariance


def test_particle_prediction_is_translation_invariant_and_batch_consistent():
    m = untrained()
    pts = scene.to_world(TOP, (0.02, 0.01, 0.4))
    acts = m.sample_actions(pts, 6, np.random.default_rng(0))
    out = m.predict(pts.astype(np.float32), acts)
    t = np.array([0.0731, -0.0417])
    shifted = pts.copy()
    shifted[:, :2] += t
    acts2 = acts.copy()
    acts2[:, :2] += t
    out2 = m.predict(shifted.astype(np.float32), acts2)
    np.testing.assert_allclose(out2[..., :2] - t, out[..., :2], atol=2e-6)
    np.testing.assert_array_equal(out[..., 2], np.broadcast_to(pts[:, 2], out[..., 2].shape).astype(np.float32))
    for b in (0, 3):
        np.testing.assert_allclose(m.predict(pts.astype(np.float32), acts[b:b + 1])[0], out[b], atol=1e-6)
    np.testing.assert_array_equal(m.predict(pts.astype(np.float32), acts), out)   # deterministic


def test_particle_output_is_turned_back_from_the_push_frame():
    m = untrained()
    with torch.no_grad():          # the network says "+x (the push direction), one delta per push statistic"
        m.net.head[-1].weight.zero_()
        m.net.head[-1].bias.copy_(torch.tensor([1.0, 0.0]))
    pts = scene.to_world(TOP, (0.02, 0.01, 0.4))
    acts = m.sample_actions(pts, 5, np.random.default_rng(2))
    acts[0, 2:] = 0.0                                                   # a zero push moves nothing
    for rigid in (True, False):
        m.options.rigid = rigid
        out = m.predict(pts.astype(np.float32), acts)
        expect = 0.02 * acts[:, None, 2:] / 0.03                        # delta * (push / push statistic)
        np.testing.assert_allclose(out[..., :2] - pts[None, :, :2], np.broadcast_to(expect, out[..., :2].shape),
                                   atol=1e-6)


def test_rigid_projection():
    rng = np.random.default_rng(4)
    xy = rng.normal(0.0, 0.05, (60, 2))
    th = np.array([0.3, -1.0])
    moved = np.stack([scene.to_world(np.c_[xy - xy.mean(0), np.zeros(60)], (xy.mean(0)[0] + 0.01, xy.mean(0)[1] - 0.02, t))
                      for t in th])[..., :2]
    exact = moved - xy
    # a rigid motion is kept, a noisy one is projected onto the nearest rigid motion
    np.testing.assert_allclose(rigidify(torch.from_numpy(xy), torch.from_numpy(exact)).numpy(), exact, atol=1e-12)
    noisy = exact + rng.normal(0.0, 0.002, exact.shape)
    r = rigidify(torch.from_numpy(xy), torch.from_numpy(noisy)).numpy()
    assert np.abs(r - exact).mean() < 0.3 * np.abs(noisy - exact).mean()
    d0 = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
    for b in range(2):
        np.testing.assert_allclose(np.linalg.norm((xy + r[b])[:, None] - (xy + r[b])[None], axis=-1), d0, atol=1e-12)
    # the model's predictions move the particles rigidly (pairwise distances kept), or not with rigid=False
    m, loose = untrained(), untrained(rigid=False)
    for model in (m, loose):
        with torch.no_grad():              # a random network that moves things (it starts near "nothing moves")
            model.net.head[-1].weight.mul_(100.0)
    pts = scene.to_world(TOP, (0.02, 0.01, 0.4))
    acts = m.sample_actions(pts, 3, np.random.default_rng(2))
    d0 = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
    out = m.predict(pts.astype(np.float32), acts).astype(np.float64)
    for b in range(3):
        np.testing.assert_allclose(np.linalg.norm(out[b][:, None] - out[b][None], axis=-1), d0, atol=1e-5)
    free = loose.predict(pts.astype(np.float32), acts).astype(np.float64)
    assert np.abs(np.linalg.norm(free[0][:, None] - free[0][None], axis=-1) - d0).max() > 1e-3


def test_ptv3_lite_in_a_frame_does_not_depend_on_how_the_geometry_is_turned():
    """The network's steerable positional encoding: a geometry turned by alpha (the same partitions) with
    frames turned by -alpha gives the same outputs; without frames it does not."""
    torch.manual_seed(0)
    net = ptv3_lite.PTv3Lite(14, 2).eval()
    c = torch.tensor(scene.to_world(TOP, (0.0, 0.0, 0.3))[voxel_downsample(scene.to_world(TOP, (0.0, 0.0, 0.3)),
                                                                              0.015, np.zeros(3))], dtype=torch.float32)
    g = ptv3_lite.build_geometry(c, grid=0.015)
    a = 0.9
    Ra = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    turned = []
    for st in g:
        rel = st.knn_rel.clone()
        rel[..., :2] = rel[..., :2] @ Ra.T
        turned.append(ptv3_lite.StageGeometry(**{**st.__dict__, "knn_rel": rel}))
    th = torch.tensor([0.3, -2.0, 1.4])
    frames = torch.stack([torch.stack([torch.cos(th), torch.sin(th)], -1),
                          torch.stack([-torch.sin(th), torch.cos(th)], -1)], -2)[:, None]   # 3 x 1 x 2 x 2
    x = torch.randn(3, len(c), 14)
    with torch.inference_mode():
        ref = net(x, g, frames)
        np.testing.assert_allclose(net(x, turned, frames @ Ra.T).numpy(), ref.numpy(), atol=1e-5)
        for b in range(3):            # one frame at a time (gather path) as in a batch (dense path)
            np.testing.assert_allclose(net(x[b:b + 1], g, frames[b:b + 1]).numpy(), ref[b:b + 1].numpy(), atol=1e-5)
        assert not np.allclose(net(x, turned, frames).numpy(), ref.numpy(), atol=1e-3)
        # no frame is the identity frame
        np.testing.assert_allclose(net(x, g).numpy(), net(x, g, torch.eye(2).expand(3, 1, 2, 2)).numpy(), atol=1e-6)


def test_augmentation_is_an_equivariance_of_the_physics_and_of_the_features():
    data = transitions(6, seed=3)
    P, A, Q = (data[k].astype(np.float64) for k in ("points", "actions", "next_points"))
    m = untrained(voxel_size=0.001)      # every particle its own model particle: features per particle
    normals = np.stack([estimate_normals(p) for p in P])
    P2, A2, Q2, N2 = m.augment(P, A, Q, normals, np.random.default_rng(7))
    assert not np.allclose(P2, P)
    for k in range(len(P)):
        # the augmented transition is what the physics does from the augmented state
        np.testing.assert_allclose(GT.predict(P2[k], A2[k:k + 1])[0], Q2[k], atol=1e-6)
        np.testing.assert_allclose(np.linalg.norm(A2[k, 2:]), np.linalg.norm(A[k, 2:]), atol=1e-12)
        # normals rotate with the cloud (PCA and the orientation rule are equivariant)
        np.testing.assert_allclose(estimate_normals(P2[k]), N2[k], atol=1e-6)
        # the features are in the push frame: the same for a turned scene, y mirrored for a mirrored one
        f1 = m.features(P[k].astype(np.float32), A[k:k + 1])
        f2 = m.features(P2[k].astype(np.float32), A2[k:k + 1])
        x1, x2 = f1["features"][0], f2["features"][0]
        assert x1.shape == x2.shape == (len(P[k]), 14)
        # the linear part of the map, from two particles' displacement
        d1 = P[k, 1:, :2] - P[k, :1, :2]
        d2 = P2[k, 1:, :2] - P2[k, :1, :2]
        R = np.linalg.lstsq(d1, d2, rcond=None)[0].T
        np.testing.assert_allclose(R @ R.T, np.eye(2), atol=1e-6)
        flip = np.array([1.0, -1.0]) if np.linalg.det(R) < 0 else np.ones(2)
        # match particles: model particle j of the original is where the map sends it
        m1 = f1["model"][:, :2] - P[k, :, :2].mean(0)
        m2 = f2["model"][:, :2] - P2[k, :, :2].mean(0)
        order = np.linalg.norm((m1 @ R.T)[:, None] - m2[None], axis=-1).argmin(1)
        x2 = x2[order]
        np.testing.assert_allclose(x1[:, :2] * flip, x2[:, :2], atol=1e-5)     # position
        np.testing.assert_allclose(x1[:, 2:6], x2[:, 2:6], atol=1e-6)        # z, RGB
        np.testing.assert_allclose(x1[:, 6:8] * flip, x2[:, 6:8], atol=1e-5)   # normal xy
        np.testing.assert_allclose(x1[:, 8], x2[:, 8], atol=1e-6)
        np.testing.assert_allclose(x1[:, 9:14], x2[:, 9:14], atol=1e-6)      # contact (0, 0), push (length, 0), length
        # and the push frames map the world's displacements to the same push-frame displacements
        R1, R2 = f1["frames"][0], f2["frames"][0]
        np.testing.assert_allclose((R1 @ (Q[k, :, :2] - P[k, :, :2]).T).T * flip,
                                   (R2 @ (Q2[k, :, :2] - P2[k, :, :2]).T).T, atol=1e-6)


# --------------------------------------------------------------------------- network


def test_ptv3_lite_segments_are_independent_and_dense_equals_gather():
    torch.manual_seed(0)
    net = ptv3_lite.PTv3Lite(14, 2).eval()
    assert ptv3_lite.count_parameters(net) == 248_002
    clouds = [torch.tensor(scene.to_world(TOP, (0.0, 0.0, y))[voxel_downsample(
        scene.to_world(TOP, (0.0, 0.0, y)), 0.015, np.zeros(3))], dtype=torch.float32) for y in (0.3, 1.9)]
    feats = [torch.randn(1, len(c), 14) for c in clouds]
    with torch.inference_mode():
        alone = [net(f, ptv3_lite.build_geometry(c, grid=0.015)) for f, c in zip(feats, clouds)]
        seg = torch.cat([torch.full((len(c),), i) for i, c in enumerate(clouds)])
        union = net(torch.cat(feats, 1), ptv3_lite.build_geometry(torch.cat(clouds), seg, grid=0.015))
        np.testing.assert_allclose(union[0].numpy(), torch.cat(alone, 1)[0].numpy(), atol=1e-5)
        # a batch of two feature sets (dense path) equals each alone (gather path)
        g = ptv3_lite.build_geometry(clouds[0], grid=0.015)
        two = net(torch.cat([feats[0], 2 * feats[0]]), g)
        np.testing.assert_allclose(two[0].numpy(), alone[0][0].numpy(), atol=1e-5)
        np.testing.assert_allclose(two[1].numpy(), net(2 * feats[0], g)[0].numpy(), atol=1e-5)
    # z-order: interleaved bits
    codes = ptv3_lite.morton_code(torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 1], [3, 3, 3]]))
    assert codes.tolist() == [1, 2, 4, 63]


# --------------------------------------------------------------------------- untrained, checkpoints


def test_untrained_models_refuse_to_predict_and_missing_checkpoints_are_named(tmp_path):
    pts = scene.to_world(TOP, (0.0, 0.0, 0.0)).astype(np.float32)
    for cls, opts in ((ParticleDynamics, ParticleOptions), (PoseDynamics, PoseOptions)):
        with pytest.raises(DataError) as e:
            cls(opts(checkpoint=None)).predict(pts, np.zeros((1, 4)))
        assert "untrained" in str(e.value) and "d2f train configs/pusht.yaml" in str(e.value)
        assert "dynamics.options.checkpoint" in str(e.value) and "allow_untrained" in str(e.value)
        with pytest.raises(DataError, match="dynamics.options.checkpoint: no trained model"):
            cls(opts(checkpoint=str(tmp_path / "nothing")))
        # malformed input is named before the untrained model is
        with pytest.raises(ValueError, match="actions"):
            cls(opts(checkpoint=None)).predict(pts, np.zeros(4))
    # registered under their names, with their capabilities
    reg = get_registry()
    assert reg.get("dynamics", "particle").manifest.capabilities == {"particles", "sample_actions", "trainable",
                                                                     "deterministic"}
    assert reg.get("dynamics", "pose").manifest.capabilities == {"sample_actions", "trainable", "deterministic"}


@pytest.mark.parametrize("kind", ["particle", "pose"])
def test_save_load_round_trip_continues_the_optimiser(tmp_path, kind):
    data = transitions(16 if kind == "particle" else 8, seed=5)

    def make(**kw):
        if kind == "particle":
            return ParticleDynamics(ParticleOptions(**{"checkpoint": None, "epochs": 1, "batch_size": 8, **kw}))
        return PoseDynamics(PoseOptions(**{"checkpoint": None, "epochs": 5, "batch_size": 8, **kw}))

    m = make()
    calls = []
    metrics = m.fit(data, progress=lambda done, total, met: calls.append((done, total, met["loss"])))
    assert calls[-1][0] == calls[-1][1] == len(calls) and all(math.isfinite(c[2]) for c in calls)
    assert all(math.isfinite(v) for v in metrics.values())
    m.save(str(tmp_path / "ckpt"))
    size = sum(f.stat().st_size for f in (tmp_path / "ckpt").iterdir())
    assert size < 5e6
    pts = data["points"][0]
    acts = m.sample_actions(pts, 8, np.random.default_rng(1))
    loaded = make(checkpoint=str(tmp_path / "ckpt"))
    np.testing.assert_array_equal(loaded.predict(pts, acts), m.predict(pts, acts))
    state = loaded.optimizer.state_dict()["state"]
    assert state and all(float(s["step"]) == m.steps for s in state.values())
    # both continue identically: the optimiser state and the fit counter came back
    m.fit(data)
    loaded.fit(data)
    np.testing.assert_array_equal(loaded.predict(pts, acts), m.predict(pts, acts))
    # a fresh model fitted once more is not the same: continuation matters
    fresh = make()
    fresh.fit(data)
    assert not np.array_equal(fresh.predict(pts, acts), m.predict(pts, acts))
    again = make()          # deterministic given the seed
    again.fit(data)
    np.testing.assert_array_equal(again.predict(pts, acts), fresh.predict(pts, acts))
    # load() into an existing model restores the saved one
    m.load(str(tmp_path / "ckpt"))
    np.testing.assert_array_equal(m.predict(pts, acts), make(checkpoint=str(tmp_path / "ckpt")).predict(pts, acts))
    if kind == "particle":   # an incompatible checkpoint is named
        with pytest.raises(DataError, match="dynamics.options.checkpoint: .* incompatible"):
            make(checkpoint=str(tmp_path / "ckpt"), voxel_size=0.02)


def test_fit_rejects_malformed_transitions():
    data = transitions(2, seed=0)
    for m in (ParticleDynamics(ParticleOptions(checkpoint=None, epochs=1)),
              PoseDynamics(PoseOptions(checkpoint=None, epochs=1))):
        with pytest.raises(ValueError, match="next_points"):
            m.fit({k: v for k, v in data.items() if k != "next_points"})
        with pytest.raises(ValueError, match="actions"):
            m.fit(dict(data, actions=np.zeros((2, 5))))


def test_pose_targets_are_the_exact_rigid_motion():
    data = transitions(8, seed=9)
    P, A, Q = (data[k].astype(np.float64) for k in ("points", "actions", "next_points"))
    theta, t = rigid_motion(P, Q)
    c, s = np.cos(theta)[:, None], np.sin(theta)[:, None]
    moved = np.stack([c * P[..., 0] - s * P[..., 1], s * P[..., 0] + c * P[..., 1]], -1) + t[:, None]
    np.testing.assert_allclose(moved, Q[..., :2], atol=1e-6)
    m = PoseDynamics(PoseOptions(checkpoint=None, allow_untrained=True))
    X, Y = m.targets(P, A, Q)
    np.testing.assert_allclose(Y[:, 2], theta, atol=1e-12)
    np.testing.assert_allclose(X[:, 4], np.hypot(A[:, 2], A[:, 3]), atol=1e-12)


# --------------------------------------------------------------------------- learning


@pytest.fixture(scope="module")
def learning_data():
    return transitions(240, seed=0), transitions(30, seed=1)


def test_learned_models_beat_the_paper_heuristic_on_held_out_pushes(learning_data):
    train, held_out = learning_data
    heuristic = mean_error(HeuristicPushDynamics(), held_out)          # rotation "none": the paper's baseline
    particle = ParticleDynamics(ParticleOptions(checkpoint=None, epochs=10, seed=0))
    particle.fit(train)
    pose = PoseDynamics(PoseOptions(checkpoint=None, epochs=500, seed=0))  # fitting the T's pose: ~0.1 s a transition
    pose.fit({k: v[:80] for k, v in train.items()})
    e_particle, e_pose = mean_error(particle, held_out), mean_error(pose, held_out)
    print(f"held-out mean particle error: particle {e_particle * 1e3:.2f} mm, pose {e_pose * 1e3:.2f} mm, "
          f"heuristic (none) {heuristic * 1e3:.2f} mm")
    assert e_particle < 0.85 * heuristic
    assert e_pose < 0.5 * heuristic
