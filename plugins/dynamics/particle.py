"""``particle`` dynamics: the paper's learned Push-T particle model (a small Point Transformer V3).

``predict(points N x 3, actions B x 4) -> B x N x 3`` moves the object's particles (metres, world
frame, z up, the board at z = 0) by the push ``(contact_x, contact_y, push_dx, push_dy)`` (metres,
world frame, as ``heuristic``): ``x_{t+1} = x_t + Δx`` with Δx predicted per particle by a network
(and, with ``rigid`` (default), projected onto the nearest planar rigid motion: **Output** below).

**Model particles.** The paper voxelises the cloud at 1.5 cm and matches the current particles to the
model's particles by nearest neighbour. Here the input points are voxelised on a ``voxel_size``
(1.5 cm) grid anchored at their centroid in xy and half a voxel below the board in z
(:func:`voxel_anchor`: voxel layers centred on z = 0, 1.5, 3 cm, so the T's top face, z = 3 cm, is
the middle of one layer instead of straddling a boundary where depth noise splits it in two), one
point per occupied voxel is a *model particle* (the point nearest its voxel's mean; in training
optionally a random one, ``random_voxel_points``, the paper's "one random point per voxel"), the
network predicts Δx for the model particles only, and every input point takes the Δx of its nearest
model particle. About 40 model particles for a T seen from above and about 47 for the flow's 256
points (top and sides), so 1000 candidate pushes are one network call of 1000 x ~40-50 tokens.

**The push frame.** Pushing is SE(2) equivariant (turn or shift the T and the push together and the
outcome turns and shifts with them), so each candidate's inputs are expressed in **its push's frame**:
origin at the contact point, +x the push direction (:func:`push_frames`; a zero push: world axes).
The network then never sees where the scene is or how it is turned, only the object relative to the
pusher, and its Δx (in that frame) is turned back to the world. The geometry the network attends
over (voxels, neighbours, pooling, serialisation) is the cloud's, shared by all candidates, and its
positional encoding is steered into each candidate's frame (:mod:`~d2f_plugins.dynamics.ptv3_lite`),
so the whole prediction is equivariant except for which points the world-aligned grids group
together (``augment_rotation`` varies that in training).

**Features** (14 per model particle, the paper's, in the push frame):

====================  ==  ===================================================================
position              3   xy relative to the contact point in the push frame (x along the push,
                          y to its left), z as is (metres / ``pos``)
RGB                   3   the constant 0.5: no colour reaches ``predict`` in this framework (the
                          estimator's particles are positions only), so RGB carries nothing
normal                3   PCA of the ``normal_k`` nearest input points; oriented up (+z) when
                          |n_z| >= 0.5, else away from the mean of the 4 ``normal_k``
                          points nearest in xy (:func:`estimate_normals`); xy turned into the
                          push frame
push parameters       5   :func:`push_parameters` in the push frame: contact point (0, 0; it is the
                          origin), push vector (length, 0) (/ ``push``), push length (/ ``push``):
                          the same for every particle
====================  ==  ===================================================================

Nothing refers to the points' centroid (an earlier version gave the contact relative to it): the
centroid of a cloud depends on how the object was sampled (the flow's 256 points put it 3.5 mm from
the T's area centroid, the T's centre of gravity is 4 mm beyond that), the particles' positions
relative to the pusher do not. ``pos``, ``push`` and ``delta`` are the normalisation statistics:
root-mean-square particle distance to the centroid in xy, push length and per-particle xy
displacement over the first ``fit``'s data (fixed afterwards, saved with the weights). Normalised
features are clipped to +-20 (a particle 0.8 m from the contact, a 0.6 m push), so absurd actions
give finite predictions.

**Output.** The network predicts Δx and Δy in the push frame per unit push length: its outputs are
multiplied by ``delta`` times the push length over ``push`` (clipped to 20), so a zero push moves
nothing and the network's outputs keep one scale over the push lengths. **z is kept** (planar pushes
on a board: the T neither lifts nor tips). With ``rigid`` (default) the carried per-point
displacements are then replaced by the planar rigid motion nearest to them in least squares (their
mean translation and the 2D-Kabsch rotation about the points' centroid, :func:`rigidify`): a pushed
T moves rigidly, and the network's per-particle errors that no rigid motion makes average out (on
held-out world pushes this alone, trained with it, took the error from 8.4 to 7.1 mm).

**Network**: :class:`~d2f_plugins.dynamics.ptv3_lite.PTv3Lite` (pure torch; serialised patch
attention, a steerable kNN positional encoding, grid pooling; encoder (32, 64, 128), decoder
(32, 64) with one block at the finest stage; 14 -> 2 channels, :data:`ARCH`). The geometry (orders,
neighbours, pooling) is built once per ``predict`` and shared by all candidates; features are
``B x M x 14`` and the frames ``B x 2 x 2``. Measured on one CPU thread (AMD EPYC): 1000 candidates
in about 0.27 s on a T's 252 top particles (41 model particles) and about 0.30 s on the flow's 256
points (47-50 model particles). Ties (a regular grid of points equidistant from two model particles
or voxel means, :data:`TIE`; equidistant neighbours in the network's kNN) go to the lower index, so
float rounding cannot flip them.

**Training** (``fit``, capability ``trainable``; ``d2f train``): per step a batch of
``batch_size`` transitions, each augmented by a random planar rotation (``augment_rotation``), a
mirror (``augment_mirror``, half the time) about a random pivot near the object and a random
translation (``augment_translation``; the physics is equivariant under all three: points,
next points, contact and push vector are transformed together; in the push frame a rotation or a
translation changes only how the world-aligned voxels and grids cut the cloud, a mirror mirrors the
push frame's y), optionally its model particles drawn from a random subset of its points
(``augment_dropout``), all of them one union point cloud through the network; the loss (``loss``:
``euclidean`` (default), the mean distance between predicted and true displacement, the held-out
metric, which predicts the typical outcome where ``mse`` predicts the average of a hit and a miss;
``mse``; ``smooth_l1``; on Δx / ``delta``) is over **every** particle of each transition, through
the nearest-model-particle carry (and the rigid projection) that ``predict`` uses. Adam (``lr``,
gradient norm clipped to 10) with, per ``fit`` call, a cosine learning rate from ``lr`` down to
``lr * lr_min`` over its steps (``lr_schedule``), ``epochs`` passes over all transitions per ``fit``
call, continuing from the current weights and optimiser state; shuffling and augmentation are drawn
from ``numpy.random.default_rng([seed, fit call number])``, weights are initialised from ``seed``:
the same data give the same model, and a resumed ``d2f train`` the same as an uninterrupted one.
torch runs with ``threads`` (1) threads inside ``fit`` and ``predict`` (restored after).

**Checkpoints**: ``save(dir)`` writes ``dir/particle.pt`` (weights, Adam state, statistics, counters,
options, architecture; about 3 MB) and ``dir/particle.json`` (the same, readable, without tensors).
The option ``checkpoint`` loads such a folder at construction: a path, or the name of a folder in
``d2f_plugins/dynamics/checkpoints/``. Without one the model is untrained and ``predict`` refuses
(unless ``allow_untrained``: random weights, for tests). Checkpoints of the earlier world-frame
model (format 1) are refused as incompatible: retrain.

``sample_actions`` is ``heuristic``'s sampler with the same sampling options.
"""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Mapping

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from d2f_core import Manifest, hookimpl
from d2f_core.types import DataError
from d2f_core.validate import check_points
from d2f_plugins.dynamics.heuristic import HeuristicOptions, HeuristicPushDynamics

__all__ = ["ParticleOptions", "ParticleDynamics", "ARCH", "CHECKPOINTS", "voxel_downsample", "estimate_normals",
           "push_parameters", "push_frames", "voxel_anchor", "nearest_index", "planar_transform", "resolve_checkpoint", "check_transitions",
           "check_actions", "torch_threads"]

CHECKPOINTS = Path(__file__).resolve().parent / "checkpoints"
"""Where a bare checkpoint name (``checkpoint: pusht-500``) is looked up when it is not a path."""

ARCH: dict[str, Any] = {"in_channels": 14, "out_channels": 2, "channels": (32, 64, 128), "depths": (1, 1, 1),
                        "heads": (1, 2, 4), "dec_channels": (32, 64), "dec_depths": (1, 0), "dec_heads": (1, 2),
                        "mlp_ratio": 2.0, "harmonics": 1, "patch": 16, "knn": 8}
"""The network's architecture (``PTv3Lite`` keyword arguments, ``patch`` and ``knn`` of the geometry)."""

RGB = 0.5
"""The constant colour feature (no colour reaches ``predict``)."""
CLIP = 20.0
"""Normalised push features are clipped to +-CLIP."""
TIE = 1e-6
"""metres: distances within this of the smallest are a tie (a voxel's representative, a point's nearest
model particle), broken by the points' order, so float rounding (a float32 cloud moved by a translation)
cannot change the choice on a regular grid of points."""
FORMAT = 2
SCALE_BY_LENGTH = True


# --------------------------------------------------------------------------- options


class _SamplingOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    push_length: list[float] = Field(
        default=[0.01, 0.05],
        description="sample_actions: [min, max] push length, metres (uniform; heuristic's sampler)")
    sample_margin: float = Field(
        default=0.015, ge=0.0, le=0.2,
        description="sample_actions: the contact point lies this far behind the object's rearmost particle on "
                    "the push line, metres (heuristic's sampler)")
    sample_band: float = Field(
        default=0.01, gt=0.0, le=0.2,
        description="sample_actions: particles within this distance of a push line (xy, metres) count as on it "
                    "(heuristic's sampler)")

    @field_validator("push_length")
    @classmethod
    def _length(cls, v: list[float]) -> list[float]:
        if len(v) != 2 or not all(math.isfinite(x) for x in v) or not (0.0 < v[0] <= v[1] <= 1.0):
            raise ValueError("expected [min, max] push length in metres with 0 < min <= max <= 1")
        return v


class _LearnedOptions(_SamplingOptions):
    checkpoint: str | None = Field(
        default=None,
        description="a trained model: a folder written by save() (d2f train's DIR/dynamics/model), or the name "
                    "of one in d2f_plugins/dynamics/checkpoints/. None: untrained (d2f train fits it)")
    allow_untrained: bool = Field(
        default=False, description="let predict() run with untrained (random) weights: for tests only")
    epochs: int = Field(default=30, ge=1, le=100_000, description="fit: passes over all transitions per call")
    batch_size: int = Field(default=32, ge=1, le=4096, description="fit: transitions per Adam step")
    lr: float = Field(default=1e-3, gt=0.0, le=1.0, description="fit: Adam learning rate")
    weight_decay: float = Field(default=0.0, ge=0.0, le=1.0, description="fit: Adam weight decay")
    loss: Literal["mse", "smooth_l1"] = Field(
        default="mse", description="fit: loss on the normalised per-particle displacement")
    seed: int = Field(default=0, description="weights' initialisation, shuffling and augmentation")
    augment_mirror: bool = Field(default=True, description="fit: mirror half the transitions (the physics of a "
                                                           "planar push has no handedness)")
    threads: int = Field(default=1, ge=1, le=256, description="torch threads inside fit and predict")


class ParticleOptions(_LearnedOptions):
    checkpoint: str | None = Field(
        default="pusht-500",
        description="a trained model: a folder written by save() (d2f train's DIR/dynamics/model), or the name of "
                    "one in d2f_plugins/dynamics/checkpoints/ (default: the shipped Push-T model, trained by `d2f train "
                    "pusht` on 500 pushes). None: untrained (d2f train fits it)")
    loss: Literal["mse", "smooth_l1", "euclidean"] = Field(
        default="euclidean", description="fit: loss on the normalised per-particle displacement: mean squared error, "
                                   "smooth L1 (per component), or euclidean: the mean distance between predicted "
                                   "and true displacement (the held-out metric; it predicts the typical outcome "
                                   "where mse predicts the average of hit and miss)")
    augment_rotation: bool = Field(default=True, description="fit: rotate each transition by a random yaw")
    augment_translation: float = Field(default=0.1, ge=0.0, le=10.0,
                                       description="fit: random translation up to this, metres, and the rotation's "
                                                   "pivot up to this far from the centroid")
    rigid: bool = Field(default=True, description="predict and fit: the particles move by the rigid planar "
                                                   "motion nearest to the network's per-particle displacements")
    augment_top_view: float = Field(
        default=0.0, ge=0.0, le=1.0,
        description="fit: this fraction of the transitions keep only their upward-facing points (normal z >= "
                    "0.5: the cloud a camera above sees) for their model particles")
    augment_dropout: float = Field(
        default=0.0, ge=0.0, lt=1.0,
        description="fit: each transition's model particles are drawn from a random subset of its points, "
                    "keeping a fraction uniform in [1 - augment_dropout, 1] (the loss is still on every point)")
    voxel_size: float = Field(default=0.015, gt=0.0, le=0.5,
                              description="model particles: one per voxel of this size, metres (paper: 1.5 cm)")
    normal_k: int = Field(default=10, ge=3, le=100, description="normals: PCA of this many nearest points")
    random_voxel_points: bool = Field(
        default=False, description="fit: a random point of each voxel is its model particle (paper); "
                                  "predict always takes the point nearest the voxel's mean")
    lr_schedule: Literal["constant", "cosine"] = Field(
        default="cosine", description="fit: the learning rate over each fit call's steps: constant lr, or a cosine "
                                      "from lr down to lr * lr_min")
    lr_min: float = Field(default=0.02, ge=0.0, le=1.0, description="fit: the cosine schedule's last rate, a "
                                                                      "fraction of lr")
    chunk: int = Field(default=2048, ge=1, le=1_000_000,
                       description="predict: candidates per network call (memory only; results do not depend on it)")


# --------------------------------------------------------------------------- shared helpers


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch with ``n`` intra-op threads inside the block (the previous number restored after)."""
    import torch
    old = torch.get_num_threads()
    if old != n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if old != n:
            torch.set_num_threads(old)


def check_actions(actions: Any, name: str = "actions") -> np.ndarray:
    """float64 B x 4 pushes, or ValueError naming ``name`` (heuristic's rules)."""
    if not isinstance(actions, np.ndarray):
        raise ValueError(f"{name}: expected a numpy array B x 4, got {type(actions).__name__}")
    if actions.ndim == 1:
        raise ValueError(f"{name}: expected a batch B x 4, got a single action of shape {actions.shape}; "
                         "use actions[None] for one action")
    if actions.ndim != 2 or actions.shape[1] != 4:
        raise ValueError(f"{name}: expected B x 4 rows of (contact_x, contact_y, push_dx, push_dy) metres, got "
                         f"shape {actions.shape}")
    if not (np.issubdtype(actions.dtype, np.floating) or np.issubdtype(actions.dtype, np.integer)):
        raise ValueError(f"{name}: expected numbers (metres), got dtype {actions.dtype}")
    a = actions.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: contains NaN or inf")
    return a


def check_transitions(transitions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(points K x N x 3, actions K x 4, next_points K x N x 3) float64 from ``fit``'s mapping, or
    ValueError naming the key."""
    if not isinstance(transitions, Mapping):
        raise ValueError(f"transitions: expected a mapping with points, actions, next_points, got "
                         f"{type(transitions).__name__}")
    for key in ("points", "actions", "next_points"):
        if key not in transitions:
            raise ValueError(f"{key}: transitions lack {key!r}; pass points K x N x 3, actions K x 4 and "
                             "next_points K x N x 3 (metres, world frame)")
    arrays = {}
    for key in ("points", "next_points"):
        v = np.asarray(transitions[key])
        if v.ndim != 3 or v.shape[2] != 3 or not np.issubdtype(v.dtype, np.number):
            raise ValueError(f"{key}: expected K x N x 3 metres, got shape {v.shape} dtype {v.dtype}")
        if not np.all(np.isfinite(v)):
            raise ValueError(f"{key}: contains NaN or inf; drop those transitions")
        arrays[key] = v.astype(np.float64)
    if arrays["points"].shape != arrays["next_points"].shape:
        raise ValueError(f"next_points: shape {arrays['next_points'].shape} differs from points' "
                         f"{arrays['points'].shape}; one next position per particle")
    if arrays["points"].shape[0] == 0 or arrays["points"].shape[1] == 0:
        raise ValueError(f"points: no transitions or no particles (shape {arrays['points'].shape})")
    a = check_actions(np.asarray(transitions["actions"]), "actions")
    if a.shape[0] != arrays["points"].shape[0]:
        raise ValueError(f"actions: {a.shape[0]} actions for {arrays['points'].shape[0]} transitions")
    return arrays["points"], a, arrays["next_points"]


def resolve_checkpoint(value: str, filename: str, option: str = "dynamics.options.checkpoint") -> Path:
    """The folder ``value`` names (a path, else a folder of :data:`CHECKPOINTS`) holding ``filename``,
    or DataError naming ``option``."""
    p = Path(value).expanduser()
    tried = [p]
    if not p.is_absolute():
        tried.append(CHECKPOINTS / value)
    for d in tried:
        if (d / filename).is_file():
            return d
    where = " or ".join(str(d) for d in tried)
    raise DataError(f"{option}: no trained model at {where} (expected {filename}, written by save()); train one "
                    f"with `d2f train configs/pusht.yaml --out DIR` and set {option} to DIR/dynamics/model")


def planar_transform(R: np.ndarray, pivot: np.ndarray, shift: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """xy (K x ... x 2) mapped by ``R (xy - pivot) + pivot + shift`` (R K x 2 x 2, pivot and shift K x 2)."""
    shape = xy.shape
    v = xy.reshape(shape[0], -1, 2) - pivot[:, None]
    return (np.einsum("kij,knj->kni", R, v) + (pivot + shift)[:, None]).reshape(shape)


def rigidify(xy, delta):
    """The planar rigid motion nearest (least squares) to moving the points ``xy`` (N x 2 or K x N x 2, torch)
    by ``delta`` (K x N x 2), as displacements K x N x 2: each row's mean displacement plus the rotation
    about the points' centroid that best aligns them (2D Kabsch); differentiable."""
    import torch
    a = xy - xy.mean(-2, keepdim=True)
    a = a.expand_as(delta)
    t = delta.mean(-2, keepdim=True)
    b = a + delta - t
    cross = (a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]).sum(-1)
    dot = (a * b).sum((-1, -2))
    th = torch.atan2(cross, dot)[:, None]
    c, s = torch.cos(th), torch.sin(th)
    turned = torch.stack([c * a[..., 0] - s * a[..., 1], s * a[..., 0] + c * a[..., 1]], -1)
    return t + turned - a


def euclidean_loss(pred, target):
    """The mean over particles of ``sqrt(|pred - target|^2 + EPS^2) - EPS`` (the last axis is xy), EPS = 1e-3:
    the distance, smoothed at 0 so its gradient is defined."""
    import torch
    return (torch.sqrt(((pred - target) ** 2).sum(-1) + 1e-6) - 1e-3).mean()


def random_planar_maps(rng: np.random.Generator, k: int, rotation: bool, mirror: bool) -> np.ndarray:
    """K x 2 x 2 orthogonal maps: a random yaw (when ``rotation``) after a mirror y -> -y half the time
    (when ``mirror``)."""
    th = rng.uniform(-np.pi, np.pi, size=k) if rotation else np.zeros(k)
    c, s = np.cos(th), np.sin(th)
    R = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)
    flip = rng.random(k) < 0.5 if mirror else np.zeros(k, bool)
    R[flip] = R[flip] @ np.diag([1.0, -1.0])
    return R


# --------------------------------------------------------------------------- features


def voxel_downsample(points: np.ndarray, voxel: float, anchor: np.ndarray,
                     rng: np.random.Generator | None = None) -> np.ndarray:
    """Indices (M) of one point per occupied ``voxel`` (cubes anchored at ``anchor``), in the voxels'
    lexicographic order: the point nearest the voxel's mean (the first of those within :data:`TIE`), or
    with ``rng`` a random one."""
    keys = np.floor((points - anchor) / voxel).astype(np.int64)
    _, inv, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    inv = inv.reshape(-1)
    n = len(points)
    if rng is None:
        means = np.zeros((len(counts), 3))
        np.add.at(means, inv, points)
        means /= counts[:, None]
        dist = np.sqrt(((points - means[inv]) ** 2).sum(1))
        best = np.full(len(counts), np.inf)
        np.minimum.at(best, inv, dist)
        score = (dist > best[inv] + TIE).astype(np.float64)     # 0 for the nearest and those within TIE
    else:
        score = rng.random(n)
    order = np.lexsort((np.arange(n), score, inv))
    return order[np.concatenate([[0], np.cumsum(counts)[:-1]])]


def estimate_normals(points: np.ndarray, k: int = 10) -> np.ndarray:
    """Unit normals (N x 3) by PCA of each point's ``k`` nearest points (itself included): the direction of
    least variance, oriented up (+z) where |n_z| >= 0.5 (a top face), else away from the mean xy of the
    ``4 k`` points nearest in xy (a side: the points above and below it lie on its plane, the top face's
    inside it; the global centroid would turn the normals of a T's concave sides, under the bar,
    inwards). Fewer than 3 points: +z."""
    p = np.asarray(points, dtype=np.float64)
    n = len(p)
    out = np.tile([0.0, 0.0, 1.0], (n, 1))
    if n < 3:
        return out
    k = min(k, n)
    wide = min(4 * k, n)
    idx = np.empty((n, k), dtype=np.int64)
    ref = np.empty((n, 2))
    sq = (p ** 2).sum(1)
    sqxy = (p[:, :2] ** 2).sum(1)
    for s in range(0, n, 1024):
        d2 = sq[s:s + 1024, None] - 2.0 * p[s:s + 1024] @ p.T + sq[None]
        idx[s:s + 1024] = np.argpartition(d2, k - 1, axis=1)[:, :k]
        d2xy = sqxy[s:s + 1024, None] - 2.0 * p[s:s + 1024, :2] @ p[:, :2].T + sqxy[None]
        ref[s:s + 1024] = p[np.argpartition(d2xy, wide - 1, axis=1)[:, :wide], :2].mean(1)
    nb = p[idx]
    nb = nb - nb.mean(1, keepdims=True)
    cov = np.einsum("nki,nkj->nij", nb, nb)
    _, vec = np.linalg.eigh(cov)
    nrm = vec[:, :, 0]
    away = ((p[:, :2] - ref) * nrm[:, :2]).sum(1)
    sign = np.where(np.abs(nrm[:, 2]) >= 0.5, np.sign(nrm[:, 2]), np.sign(away))
    sign[sign == 0] = 1.0
    return nrm * sign[:, None]


def voxel_anchor(centroid: np.ndarray, voxel: float) -> np.ndarray:
    """Where the model particles' voxels (and the network's coarser grids) are anchored: the centroid in xy,
    half a voxel below the board in z, so voxel layers are centred on z = 0, 1.5 cm, 3 cm, ...: the T's top
    face (z = 3 cm) lies in the middle of a layer, not on a boundary where depth noise would split it in two."""
    return np.array([centroid[0], centroid[1], -0.5 * voxel])


def push_frames(actions: np.ndarray) -> np.ndarray:
    """B x 2 x 2 rotations from the world's xy to each push's frame (its +x the push direction, +y 90 degrees
    counter-clockwise from it): ``R @ (push_dx, push_dy) = (length, 0)``. A zero push: the identity."""
    a = np.asarray(actions, dtype=np.float64)
    L = np.hypot(a[:, 2], a[:, 3])
    zero = L <= 0.0
    ux = np.where(zero, 1.0, a[:, 2] / np.where(zero, 1.0, L))
    uy = np.where(zero, 0.0, a[:, 3] / np.where(zero, 1.0, L))
    return np.stack([np.stack([ux, uy], -1), np.stack([-uy, ux], -1)], -2)


def push_parameters(actions: np.ndarray) -> np.ndarray:
    """B x 5 (metres), in each push's own frame (:func:`push_frames`, its origin the contact point): the
    contact point (so ``(0, 0)``), the push vector (so ``(length, 0)``) and the push length."""
    a = np.asarray(actions, dtype=np.float64)
    L = np.hypot(a[:, 2], a[:, 3])
    return np.stack([np.zeros_like(L), np.zeros_like(L), L, np.zeros_like(L), L], axis=1)


def nearest_index(points: np.ndarray, model: np.ndarray) -> np.ndarray:
    """For each of ``points`` (N x 3) the index of its nearest ``model`` point (M x 3): the lowest index
    within :data:`TIE` of the smallest distance."""
    out = np.empty(len(points), dtype=np.int64)
    msq = (model ** 2).sum(1)
    for s in range(0, len(points), 4096):
        p = points[s:s + 4096]
        d = np.sqrt(np.maximum((p ** 2).sum(1)[:, None] + msq[None] - 2.0 * p @ model.T, 0.0))
        out[s:s + 4096] = (d <= d.min(1, keepdims=True) + TIE).argmax(1)   # the first within TIE of the nearest
    return out


# --------------------------------------------------------------------------- the model


class ParticleDynamics:
    """``predict(points N x 3, actions B x 4) -> B x N x 3`` with a learned PTv3-style network (module
    docstring); ``fit``/``save``/``load`` (``d2f train``); ``sample_actions`` heuristic's contact pushes."""

    name, kind, Options = "particle", "dynamics", ParticleOptions
    capabilities = frozenset({"particles", "sample_actions", "trainable", "deterministic"})
    description = ("the paper's learned Push-T particle dynamics: a small pure-torch Point Transformer V3 on "
                   "1.5 cm model particles (position, RGB, normal, push) predicting each particle's displacement")
    verified = ("features, voxels, normals and SE(2)-equivariant augmentation checked; beats the paper's heuristic "
                "on held-out quasi-static pushes after seconds of training; save/load round trip "
                "(tests/test_pusht_dynamics.py)")
    extra, requires = "rl", ("torch",)
    action_dim = 4
    action_names = ("contact_x m", "contact_y m", "push_dx m", "push_dy m")
    FILE = "particle.pt"

    def __init__(self, options: ParticleOptions | None = None) -> None:
        import torch

        from d2f_plugins.dynamics.ptv3_lite import PTv3Lite

        self.options = o = options or ParticleOptions()
        self._sampler = HeuristicPushDynamics(HeuristicOptions(
            push_length=list(o.push_length), sample_margin=o.sample_margin, sample_band=o.sample_band))
        arch = {k: v for k, v in ARCH.items() if k not in ("patch", "knn")}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(o.seed)
            self.net = PTv3Lite(**arch)
            with torch.no_grad():   # start from "nothing moves"
                self.net.head[-1].weight.mul_(0.01)
                self.net.head[-1].bias.zero_()
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=o.lr, weight_decay=o.weight_decay)
        self.stats: dict[str, float] | None = None
        self.fit_calls = 0
        self.steps = 0
        self.trained = False
        if o.checkpoint is not None:
            self._load(resolve_checkpoint(o.checkpoint, self.FILE), "dynamics.options.checkpoint")

    # ------------------------------------------------------------------ features
    def _cloud(self, pts: np.ndarray, normals: np.ndarray | None = None,
               rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
        """The model particles of the cloud ``pts`` (N x 3): centroid (its z 0), their positions relative
        to it (``rel``, M x 3, metres, world axes) and to the voxels' anchor (``grid``: the network's
        geometry), their normals (M x 3, world axes), each input point's nearest model particle."""
        o = self.options
        c = pts[:, :2].mean(0)
        centroid = np.array([c[0], c[1], 0.0])
        anchor = voxel_anchor(centroid, o.voxel_size)
        idx = voxel_downsample(pts, o.voxel_size, anchor, rng)
        if normals is None:
            normals = estimate_normals(pts, o.normal_k)
        return {"centroid": centroid, "rel": pts[idx] - centroid, "grid": pts[idx] - anchor, "normals": normals[idx],
                "near": nearest_index(pts, pts[idx])}

    def _inputs(self, cl: dict[str, np.ndarray], actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(features B x M x 14 float32, normalised, in each push's frame; the frames B x 2 x 2) of the
        model particles ``cl`` (:meth:`_cloud`) for the pushes ``actions`` (B x 4, metres, world)."""
        R = push_frames(actions)
        B, M = len(actions), len(cl["rel"])
        pos, push = self.stats["pos"], self.stats["push"]
        x = np.empty((B, M, 14))
        xy = cl["rel"][None, :, :2] + (cl["centroid"][:2] - actions[:, :2])[:, None]     # from the contact
        x[..., 0:2] = np.einsum("bij,bmj->bmi", R, xy) / pos
        x[..., 2] = cl["rel"][:, 2] / pos
        x[..., 3:6] = RGB
        x[..., 6:8] = np.einsum("bij,mj->bmi", R, cl["normals"][:, :2])
        x[..., 8] = cl["normals"][:, 2]
        q = push_parameters(actions)
        x[..., 9:11] = q[:, None, :2] / pos
        x[..., 11:14] = (q[:, 2:] / push)[:, None]
        return np.clip(x, -CLIP, CLIP).astype(np.float32), R

    def _gain(self, actions: np.ndarray) -> np.ndarray:
        """B: what the network's outputs are multiplied by (times ``delta``): the push length over ``push``
        (clipped to CLIP) when the output is per push length, else 1."""
        if not SCALE_BY_LENGTH:
            return np.ones(len(actions))
        return np.minimum(np.hypot(actions[:, 2], actions[:, 3]) / self.stats["push"], CLIP)

    def features(self, points: np.ndarray, actions: np.ndarray) -> dict[str, np.ndarray]:
        """The network's inputs for ``points`` (N x 3) and ``actions`` (B x 4) as ``predict`` builds them:
        ``features`` B x M x 14 (normalised), ``model`` M x 3 model particles (metres, world),
        ``near`` N, ``centroid`` 3 (its z is 0). Needs the normalisation statistics (a trained model, or
        :meth:`set_stats`)."""
        self._need_stats()
        pts = check_points(points, "points").astype(np.float64)
        a = check_actions(actions)
        cl = self._cloud(pts)
        x, R = self._inputs(cl, a)
        return {"features": x, "frames": R, "model": cl["rel"] + cl["centroid"], "near": cl["near"],
                "centroid": cl["centroid"]}

    def set_stats(self, pos: float, push: float, delta: float) -> None:
        """Set the normalisation statistics (metres) by hand; ``fit`` sets them from its first data."""
        self.stats = {"pos": float(pos), "push": float(push), "delta": float(delta)}

    def _need_stats(self) -> None:
        if self.stats is None:
            if not self.options.allow_untrained:
                self._untrained()
            self.set_stats(0.035, 0.03, 0.02)

    def _untrained(self) -> None:
        raise DataError(
            f"dynamics.options.checkpoint: the {self.name} model is untrained; set dynamics.options.checkpoint to "
            "a trained model (a folder written by save(): DIR/dynamics/model after `d2f train configs/pusht.yaml "
            "--out DIR`), or dynamics.options.allow_untrained: true to predict with random weights (tests only)")

    def _geometry(self, rel: np.ndarray, segment: np.ndarray | None = None):
        import torch

        from d2f_plugins.dynamics.ptv3_lite import build_geometry
        seg = None if segment is None else torch.from_numpy(segment)
        return build_geometry(torch.from_numpy(rel.astype(np.float32)), seg, grid=self.options.voxel_size,
                              stages=len(ARCH["channels"]), patch=ARCH["patch"], k=ARCH["knn"])

    # ------------------------------------------------------------------ API
    def predict(self, points: np.ndarray, actions: np.ndarray) -> np.ndarray:
        import torch

        pts = check_points(points, "points").astype(np.float64)
        a = check_actions(actions)
        if not self.trained and not self.options.allow_untrained:
            self._untrained()
        self._need_stats()
        B, N = a.shape[0], pts.shape[0]
        out = np.repeat(pts[None], B, axis=0)
        if B == 0 or N == 0:
            return out.astype(np.float32)
        cl = self._cloud(pts)
        x, R = self._inputs(cl, a)
        x, frame = torch.from_numpy(x), torch.from_numpy(R.astype(np.float32))[:, None]
        near = torch.from_numpy(cl["near"])
        with torch_threads(self.options.threads), torch.inference_mode():
            geom = self._geometry(cl["grid"])
            self.net.eval()
            deltas = []
            for s in range(0, B, self.options.chunk):
                c = slice(s, s + self.options.chunk)
                deltas.append(self.net(x[c], geom, frame[c])[:, near])
            delta = torch.cat(deltas).double().numpy() * (self.stats["delta"] * self._gain(a))[:, None, None]
        delta = np.einsum("bji,bnj->bni", R, delta)                                  # back to the world
        if self.options.rigid:
            delta = rigidify(torch.from_numpy(pts[:, :2]), torch.from_numpy(delta)).numpy()
        out[:, :, :2] += delta
        return out.astype(np.float32)

    def sample_actions(self, points: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` contact pushes (n x 4, metres, world frame): heuristic's sampler."""
        return self._sampler.sample_actions(points, n, rng)

    # ------------------------------------------------------------------ training
    def _init_stats(self, P: np.ndarray, A: np.ndarray, Q: np.ndarray) -> None:
        rel = P[:, :, :2] - P[:, :, :2].mean(1, keepdims=True)
        pos = math.sqrt(float((rel ** 2).sum(-1).mean()))
        push = math.sqrt(float((A[:, 2:4] ** 2).sum(-1).mean()))
        delta = math.sqrt(float(((Q - P)[:, :, :2] ** 2).sum(-1).mean()))
        self.set_stats(max(pos, 1e-3), max(push, 1e-3), max(delta, 1e-4))

    def fit(self, transitions: Mapping[str, np.ndarray], *, progress: Callable | None = None) -> dict[str, float]:
        """Train on ``transitions`` (points K x N x 3, actions K x 4, next_points K x N x 3; metres, world
        frame) for ``epochs`` passes, continuing from the current weights and optimiser state (module
        docstring). Returns ``loss`` (last epoch's mean, normalised units), ``loss_first_epoch``, ``rmse_m``
        (last epoch's root-mean-square particle displacement error, metres, on augmented data), ``epochs``,
        ``steps`` (Adam steps so far), ``transitions``."""
        import torch

        P, A, Q = check_transitions(transitions)
        o = self.options
        if self.stats is None:
            self._init_stats(P, A, Q)
        K = P.shape[0]
        normals = np.stack([estimate_normals(p, o.normal_k) for p in P])
        rng = np.random.default_rng([o.seed, self.fit_calls])
        steps_per_epoch = (K + o.batch_size - 1) // o.batch_size
        total = steps_per_epoch * o.epochs
        lossf = {"mse": torch.nn.functional.mse_loss, "smooth_l1": torch.nn.functional.smooth_l1_loss,
                 "euclidean": euclidean_loss}[o.loss]
        first = last = rmse = float("nan")
        done = 0
        with torch_threads(o.threads):
            self.net.train()
            for epoch in range(o.epochs):
                perm = rng.permutation(K)
                losses, sq = [], []
                for s in range(0, K, o.batch_size):
                    b = perm[s:s + o.batch_size]
                    lr = o.lr
                    if o.lr_schedule == "cosine":
                        lr = o.lr * (o.lr_min + (1.0 - o.lr_min) * 0.5 * (1.0 + math.cos(math.pi * done / total)))
                    for g in self.optimizer.param_groups:
                        g["lr"] = lr
                    loss, err2 = self._step(P[b], A[b], Q[b], normals[b], rng, lossf)
                    losses.append(loss * len(b))
                    sq.append(err2 * len(b))
                    done += 1
                    if progress is not None:
                        progress(done, total, {"loss": loss})
                last = float(np.sum(losses) / K)
                rmse = math.sqrt(float(np.sum(sq) / K))
                if epoch == 0:
                    first = last
            self.net.eval()
        self.fit_calls += 1
        self.trained = True
        return {"loss": last, "loss_first_epoch": first, "rmse_m": rmse, "epochs": float(o.epochs),
                "steps": float(self.steps), "transitions": float(K)}

    def augment(self, P: np.ndarray, A: np.ndarray, Q: np.ndarray, normals: np.ndarray,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """A batch of transitions (points K x N x 3, actions K x 4, next points, normals) under random planar
        maps (rotation, mirror) about random pivots and random translations (module docstring)."""
        o = self.options
        k = len(P)
        R = random_planar_maps(rng, k, o.augment_rotation, o.augment_mirror)
        c = P[:, :, :2].mean(1)
        t = o.augment_translation
        pivot = c + rng.uniform(-t, t, size=(k, 2))
        shift = rng.uniform(-t, t, size=(k, 2))
        P2, Q2, A2, N2 = P.copy(), Q.copy(), A.copy(), normals.copy()
        P2[:, :, :2] = planar_transform(R, pivot, shift, P[:, :, :2])
        Q2[:, :, :2] = planar_transform(R, pivot, shift, Q[:, :, :2])
        A2[:, :2] = planar_transform(R, pivot, shift, A[:, None, :2])[:, 0]
        A2[:, 2:4] = np.einsum("kij,kj->ki", R, A[:, 2:4])
        N2[:, :, :2] = np.einsum("kij,knj->kni", R, normals[:, :, :2])
        return P2, A2, Q2, N2

    def _step(self, P, A, Q, normals, rng, lossf) -> tuple[float, float]:
        import torch

        o = self.options
        P, A, Q, normals = self.augment(P, A, Q, normals, rng)
        rels, xs, nears, segs, frames = [], [], [], [], []
        offset = 0
        for i in range(len(P)):
            keep = None
            if o.augment_top_view > 0.0 and rng.random() < o.augment_top_view:
                keep = np.flatnonzero(normals[i][:, 2] >= 0.5)
                if len(keep) < 3:
                    keep = None
            if keep is None and o.augment_dropout > 0.0:
                keep = np.sort(rng.permutation(len(P[i]))[:max(1, round(len(P[i]) * (1.0 - rng.uniform(
                    0.0, o.augment_dropout))))])
            if keep is not None:     # the model particles from a subset of the points, the loss on every point
                cl = self._cloud(P[i][keep], normals[i][keep], rng if o.random_voxel_points else None)
                cl["near"] = nearest_index(P[i], cl["rel"] + cl["centroid"])
            else:
                cl = self._cloud(P[i], normals[i], rng if o.random_voxel_points else None)
            M = len(cl["rel"])
            x, R = self._inputs(cl, A[i:i + 1])
            xs.append(x[0])
            frames.append(R[0])
            rels.append(cl["grid"])
            nears.append(cl["near"] + offset)
            segs.append(np.full(M, i, dtype=np.int64))
            offset += M
        geom = self._geometry(np.concatenate(rels), np.concatenate(segs))
        x = torch.from_numpy(np.concatenate(xs))[None]
        R = np.stack(frames)                                            # k x 2 x 2
        near = torch.from_numpy(np.stack(nears))                      # k x N
        target = np.einsum("kij,knj->kni", R, (Q - P)[:, :, :2]) / self.stats["delta"]   # in the push frames
        target = torch.from_numpy(target.astype(np.float32))
        gain = torch.from_numpy(self._gain(A).astype(np.float32))[:, None, None]
        pred = self.net(x, geom, torch.from_numpy(R.astype(np.float32))[None])[0][near] * gain   # k x N x 2
        if o.rigid:     # the points in the push frames, in the outputs' units
            xy = np.einsum("kij,knj->kni", R, P[:, :, :2] - P[:, :, :2].mean(1, keepdims=True)) / self.stats["delta"]
            pred = rigidify(torch.from_numpy(xy.astype(np.float32)), pred)
        loss = lossf(pred, target)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), 10.0)
        self.optimizer.step()
        self.steps += 1
        err2 = float(((pred.detach() - target) ** 2).sum(-1).mean()) * self.stats["delta"] ** 2
        return float(loss.detach()), err2

    # ------------------------------------------------------------------ checkpoints
    def _meta(self) -> dict[str, Any]:
        o = self.options
        return {"format": FORMAT, "plugin": self.name, "arch": {k: list(v) if isinstance(v, tuple) else v
                                                                 for k, v in ARCH.items()},
                "features": {"voxel_size": o.voxel_size, "normal_k": o.normal_k, "rgb": RGB, "clip": CLIP,
                             "frame": "push"},
                "stats": self.stats, "fit_calls": self.fit_calls, "steps": self.steps, "trained": self.trained,
                "options": o.model_dump(mode="json")}

    def save(self, directory: str) -> None:
        """Write weights, Adam state, statistics, counters and options into ``directory`` (created)."""
        import torch
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        meta = self._meta()
        torch.save({"meta": json.dumps(meta), "model": self.net.state_dict(),
                    "optimizer": self.optimizer.state_dict()}, d / self.FILE)
        (d / (Path(self.FILE).stem + ".json")).write_text(json.dumps(meta, indent=1) + "\n")

    def load(self, directory: str) -> None:
        """Restore what ``save(directory)`` wrote (weights, optimiser, statistics, counters)."""
        d = Path(directory)
        if not (d / self.FILE).is_file():
            raise DataError(f"directory: {d / self.FILE} not found; load() reads what save(directory) wrote")
        self._load(d, "directory")

    def _load(self, d: Path, what: str) -> None:
        import torch
        path = d / self.FILE
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            meta = json.loads(blob["meta"])
        except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
            raise DataError(f"{what}: {path} is not a {self.name} checkpoint ({type(e).__name__}: {e}); point "
                            "it at a folder written by save()") from None
        mine = self._meta()
        for key in ("format", "plugin", "arch", "features"):
            if meta.get(key) != mine[key]:
                raise DataError(f"{what}: {path} is incompatible with this {self.name} model: its {key} is "
                                f"{meta.get(key)!r}, this one's {mine[key]!r}; retrain (d2f train) or use "
                                "matching options")
        try:
            self.net.load_state_dict(blob["model"])
            self.optimizer.load_state_dict(blob["optimizer"])
        except (RuntimeError, ValueError, KeyError) as e:
            raise DataError(f"{what}: {path} does not fit this {self.name} network ({e})") from None
        for g in self.optimizer.param_groups:
            g["lr"], g["weight_decay"] = self.options.lr, self.options.weight_decay
        self.stats = meta["stats"]
        self.fit_calls, self.steps, self.trained = int(meta["fit_calls"]), int(meta["steps"]), bool(meta["trained"])


@hookimpl
def d2f_register(register):
    register(Manifest.of(ParticleDynamics))
