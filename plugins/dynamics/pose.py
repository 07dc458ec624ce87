"""``pose`` dynamics: the paper's Push-T pose baseline (T pose + push -> change of pose, an MLP).

``predict(points N x 3, actions B x 4) -> B x N x 3`` for pushes ``(contact_x, contact_y, push_dx,
push_dy)`` (metres, world frame, as ``heuristic``):

1. **State**: the T's pose ``(x, y, yaw)`` fitted to the particles
   (:func:`d2f_plugins.world.pusht_scene.fit_t_pose`; its convention: the origin is the middle of the
   bar's outer edge). Fewer than 3 particles: the centroid with yaw 0.
2. **Input** (5, in the T's frame, so the model is invariant to where the T is and how it is turned):
   the contact point relative to the pose's origin (2, / ``pos``), the push vector (2, / ``push``) and
   its length (1, / ``push``), clipped to +-20 after normalisation.
3. **MLP**: ``layers`` (3) hidden layers of ``hidden`` (128) units, GELU, to ``(dx, dy, dyaw)``: the
   change of the pose in its own frame (dx, dy times ``move``, metres; dyaw times ``turn``, radians).
4. **Particles** move rigidly with it: ``p' = t + R(yaw) (dx, dy) + R(dyaw) (p - t)`` in xy, z kept
   (``t``, ``yaw`` the fitted pose).

``pos``, ``push``, ``move`` and ``turn`` are root-mean-square values over the first ``fit``'s data
(saved with the weights).

**Training** (``fit``, capability ``trainable``; ``d2f train``): each transition's pose is fitted to
its ``points`` (cached by content, so ``d2f train``'s repeated fits on the growing data set fit each
transition once) and its change is the planar rigid motion between ``points`` and ``next_points``
(2D Kabsch on the corresponding particles: exact for the simulator's particles, and independent of
the pose fit's error); the target is that motion in the fitted frame. Augmentation: the T is
symmetric about its local y axis, so a transition mirrored in the T's frame (x, push_x, dx and dyaw
negated) is as valid; ``augment_mirror`` mirrors half of each batch (rotations and translations change
nothing: the inputs are in the T's frame). MSE (or smooth L1) on the normalised targets, Adam, the
same options, determinism, progress, threads and checkpoints (``dir/pose.pt`` + ``dir/pose.json``,
``checkpoint`` at construction, ``allow_untrained``) as ``particle``.

``sample_actions`` is ``heuristic``'s sampler with the same sampling options.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
from pydantic import Field

from d2f_core import Manifest, hookimpl
from d2f_core.types import DataError
from d2f_core.validate import check_points
from d2f_plugins.dynamics.heuristic import HeuristicOptions, HeuristicPushDynamics
from d2f_plugins.dynamics.particle import (_LearnedOptions, check_actions, check_transitions,
                                           resolve_checkpoint, torch_threads)
from d2f_plugins.world import pusht_scene as scene

__all__ = ["PoseOptions", "PoseDynamics", "local_push", "rigid_motion"]

CLIP = 20.0
FORMAT = 1


class PoseOptions(_LearnedOptions):
    checkpoint: str | None = Field(
        default="pusht-500",
        description="a trained model: a folder written by save() (d2f train's DIR/dynamics/model), or the name of "
                    "one in d2f_plugins/dynamics/checkpoints/ (default: the shipped Push-T model, trained by `d2f train "
                    "pusht --set dynamics.plugin=pose` on 500 pushes). None: untrained (d2f train fits it)")
    epochs: int = Field(default=200, ge=1, le=100_000, description="fit: passes over all transitions per call")
    batch_size: int = Field(default=64, ge=1, le=4096, description="fit: transitions per Adam step")
    hidden: int = Field(default=128, ge=4, le=4096, description="MLP hidden units")
    layers: int = Field(default=3, ge=1, le=16, description="MLP hidden layers")


def local_push(actions: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """B x 5 (metres): contact point relative to the pose's origin and push vector, both in the T's frame
    at ``pose`` (x, y, yaw), and push length."""
    a = np.asarray(actions, dtype=np.float64)
    c, s = math.cos(pose[2]), math.sin(pose[2])
    Rt = np.array([[c, s], [-s, c]])                      # R(yaw)^T
    contact = (a[:, :2] - pose[:2]) @ Rt.T
    push = a[:, 2:4] @ Rt.T
    return np.concatenate([contact, push, np.hypot(a[:, 2], a[:, 3])[:, None]], axis=1)


def rigid_motion(P: np.ndarray, Q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The planar rigid motions (K angles, K x 2 translations) that best map P (K x N x 2|3) onto the
    corresponding Q (least squares, xy): ``Q ~ R(theta) P + t``."""
    a, b = P[..., :2], Q[..., :2]
    ca, cb = a.mean(1), b.mean(1)
    a0, b0 = a - ca[:, None], b - cb[:, None]
    theta = np.arctan2((a0[..., 0] * b0[..., 1] - a0[..., 1] * b0[..., 0]).sum(1),
                       (a0 * b0).sum((1, 2)))
    c, s = np.cos(theta), np.sin(theta)
    t = cb - np.stack([c * ca[:, 0] - s * ca[:, 1], s * ca[:, 0] + c * ca[:, 1]], -1)
    return theta, t


class PoseDynamics:
    """``predict(points N x 3, actions B x 4) -> B x N x 3``: fitted T pose + push -> change of pose (an MLP),
    the particles moved rigidly (module docstring); ``fit``/``save``/``load``; ``sample_actions``."""

    name, kind, Options = "pose", "dynamics", PoseOptions
    capabilities = frozenset({"sample_actions", "trainable", "deterministic"})
    description = ("the paper's Push-T pose baseline: the T pose fitted to the particles + the push in the T's "
                   "frame -> change of pose (MLP); the particles move rigidly")
    verified = ("rigid-motion targets exact; invariant to the T's placement; beats the paper's heuristic on held-out "
                "quasi-static pushes after seconds of training; save/load round trip (tests/test_pusht_dynamics.py)")
    extra, requires = "rl", ("torch", "scipy")
    action_dim = 4
    action_names = ("contact_x m", "contact_y m", "push_dx m", "push_dy m")
    FILE = "pose.pt"

    def __init__(self, options: PoseOptions | None = None) -> None:
        import torch
        from torch import nn

        self.options = o = options or PoseOptions()
        self._sampler = HeuristicPushDynamics(HeuristicOptions(
            push_length=list(o.push_length), sample_margin=o.sample_margin, sample_band=o.sample_band))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(o.seed)
            layers: list[nn.Module] = []
            width = 5
            for _ in range(o.layers):
                layers += [nn.Linear(width, o.hidden), nn.GELU()]
                width = o.hidden
            layers.append(nn.Linear(width, 3))
            self.net = nn.Sequential(*layers)
            with torch.no_grad():
                self.net[-1].weight.mul_(0.01)
                self.net[-1].bias.zero_()
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=o.lr, weight_decay=o.weight_decay)
        self.stats: dict[str, float] | None = None
        self.fit_calls = 0
        self.steps = 0
        self.trained = False
        self._poses: dict[bytes, tuple[float, float, float]] = {}
        if o.checkpoint is not None:
            self._load(resolve_checkpoint(o.checkpoint, self.FILE), "dynamics.options.checkpoint")

    # ------------------------------------------------------------------ pieces
    @staticmethod
    def fit_pose(points: np.ndarray) -> np.ndarray:
        """The T's pose (x, y, yaw) fitted to ``points`` (N x 3); the centroid and yaw 0 below 3 points."""
        if len(points) < 3:
            c = points[:, :2].mean(0) if len(points) else np.zeros(2)
            return np.array([c[0], c[1], 0.0])
        return np.array(scene.fit_t_pose(points), dtype=np.float64)

    def _cached_pose(self, points: np.ndarray) -> np.ndarray:
        key = hashlib.sha1(np.ascontiguousarray(points, dtype=np.float64).tobytes()).digest()
        if key not in self._poses:
            self._poses[key] = tuple(self.fit_pose(points))
        return np.array(self._poses[key])

    def _inputs(self, q: np.ndarray) -> np.ndarray:
        q = q.copy()
        q[:, :2] /= self.stats["pos"]
        q[:, 2:] /= self.stats["push"]
        return np.clip(q, -CLIP, CLIP)

    def set_stats(self, pos: float, push: float, move: float, turn: float) -> None:
        """Set the normalisation statistics (metres, radians) by hand; ``fit`` sets them from its first data."""
        self.stats = {"pos": float(pos), "push": float(push), "move": float(move), "turn": float(turn)}

    def _untrained(self) -> None:
        raise DataError(
            f"dynamics.options.checkpoint: the {self.name} model is untrained; set dynamics.options.checkpoint to "
            "a trained model (a folder written by save(): DIR/dynamics/model after `d2f train configs/pusht.yaml "
            "--out DIR` with dynamics.plugin=pose), or dynamics.options.allow_untrained: true to predict with "
            "random weights (tests only)")

    def predict_pose_change(self, pose: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """B x 3: (dx, dy) metres and dyaw radians, in the T's frame at ``pose``, for ``actions`` (B x 4)."""
        import torch
        if self.stats is None:
            if not self.options.allow_untrained:
                self._untrained()
            self.set_stats(0.05, 0.03, 0.01, 0.1)
        x = torch.from_numpy(self._inputs(local_push(actions, pose)).astype(np.float32))
        with torch_threads(self.options.threads), torch.inference_mode():
            self.net.eval()
            y = self.net(x).double().numpy()
        return y * np.array([self.stats["move"], self.stats["move"], self.stats["turn"]])

    # ------------------------------------------------------------------ API
    def predict(self, points: np.ndarray, actions: np.ndarray) -> np.ndarray:
        pts = check_points(points, "points").astype(np.float64)
        a = check_actions(actions)
        if not self.trained and not self.options.allow_untrained:
            self._untrained()
        B, N = a.shape[0], pts.shape[0]
        out = np.repeat(pts[None], B, axis=0)
        if B == 0 or N == 0:
            return out.astype(np.float32)
        pose = self.fit_pose(pts)
        d = self.predict_pose_change(pose, a)
        c, s = math.cos(pose[2]), math.sin(pose[2])
        t1 = pose[:2] + np.stack([c * d[:, 0] - s * d[:, 1], s * d[:, 0] + c * d[:, 1]], -1)   # B x 2
        cr, sr = np.cos(d[:, 2])[:, None], np.sin(d[:, 2])[:, None]
        rx, ry = pts[None, :, 0] - pose[0], pts[None, :, 1] - pose[1]
        out[:, :, 0] = t1[:, :1] + cr * rx - sr * ry
        out[:, :, 1] = t1[:, 1:] + sr * rx + cr * ry
        return out.astype(np.float32)

    def sample_actions(self, points: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` contact pushes (n x 4, metres, world frame): heuristic's sampler."""
        return self._sampler.sample_actions(points, n, rng)

    # ------------------------------------------------------------------ training
    def targets(self, points: np.ndarray, actions: np.ndarray, next_points: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
        """(inputs K x 5 metres, targets K x 3: dx, dy metres and dyaw radians in the fitted T frame) of
        transitions (points K x N x 3, actions K x 4, next_points K x N x 3)."""
        poses = np.stack([self._cached_pose(p) for p in points])
        theta, t = rigid_motion(points, next_points)
        c, s = np.cos(theta), np.sin(theta)
        t1 = np.stack([c * poses[:, 0] - s * poses[:, 1], s * poses[:, 0] + c * poses[:, 1]], -1) + t
        dw = t1 - poses[:, :2]
        cy, sy = np.cos(poses[:, 2]), np.sin(poses[:, 2])
        local = np.stack([cy * dw[:, 0] + sy * dw[:, 1], -sy * dw[:, 0] + cy * dw[:, 1]], -1)
        inputs = np.stack([local_push(actions[k:k + 1], poses[k])[0] for k in range(len(actions))])
        return inputs, np.concatenate([local, theta[:, None]], 1)

    def fit(self, transitions: Mapping[str, np.ndarray], *, progress: Callable | None = None) -> dict[str, float]:
        """Train on ``transitions`` for ``epochs`` passes, continuing from the current weights and optimiser
        state (module docstring). Returns ``loss`` (last epoch, normalised), ``loss_first_epoch``,
        ``move_rmse_m`` and ``turn_rmse_rad`` (last epoch, on the training data), ``epochs``, ``steps``,
        ``transitions``."""
        import torch

        P, A, Q = check_transitions(transitions)
        o = self.options
        X, Y = self.targets(P, A, Q)
        if self.stats is None:
            ms = [float(np.mean(v)) for v in ((X[:, :2] ** 2).sum(1), (X[:, 2:4] ** 2).sum(1),
                                              (Y[:, :2] ** 2).sum(1), Y[:, 2] ** 2)]
            self.set_stats(*(max(math.sqrt(v), floor) for v, floor in zip(ms, (1e-3, 1e-3, 1e-4, 1e-4))))
        scale = np.array([self.stats["move"], self.stats["move"], self.stats["turn"]])
        K = len(X)
        rng = np.random.default_rng([o.seed, self.fit_calls])
        steps_per_epoch = (K + o.batch_size - 1) // o.batch_size
        total = steps_per_epoch * o.epochs
        lossf = torch.nn.functional.mse_loss if o.loss == "mse" else torch.nn.functional.smooth_l1_loss
        first = last = float("nan")
        sq = np.zeros(3)
        done = 0
        with torch_threads(o.threads):
            self.net.train()
            for epoch in range(o.epochs):
                perm = rng.permutation(K)
                total_loss, sq = 0.0, np.zeros(3)
                for s in range(0, K, o.batch_size):
                    b = perm[s:s + o.batch_size]
                    x, y = X[b].copy(), Y[b].copy()
                    if o.augment_mirror:
                        flip = rng.random(len(b)) < 0.5
                        x[flip, 0] *= -1.0
                        x[flip, 2] *= -1.0
                        y[flip, 0] *= -1.0
                        y[flip, 2] *= -1.0
                    xt = torch.from_numpy(self._inputs(x).astype(np.float32))
                    yt = torch.from_numpy((y / scale).astype(np.float32))
                    pred = self.net(xt)
                    loss = lossf(pred, yt)
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    self.optimizer.step()
                    self.steps += 1
                    done += 1
                    total_loss += float(loss.detach()) * len(b)
                    sq += (((pred.detach().double().numpy() - y / scale) * scale) ** 2).sum(0)
                    if progress is not None:
                        progress(done, total, {"loss": float(loss.detach())})
                last = total_loss / K
                if epoch == 0:
                    first = last
            self.net.eval()
        self.fit_calls += 1
        self.trained = True
        return {"loss": last, "loss_first_epoch": first, "move_rmse_m": math.sqrt((sq[0] + sq[1]) / K),
                "turn_rmse_rad": math.sqrt(sq[2] / K), "epochs": float(o.epochs), "steps": float(self.steps),
                "transitions": float(K)}

    # ------------------------------------------------------------------ checkpoints
    def _meta(self) -> dict[str, Any]:
        o = self.options
        return {"format": FORMAT, "plugin": self.name, "arch": {"hidden": o.hidden, "layers": o.layers, "clip": CLIP},
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
        (d / "pose.json").write_text(json.dumps(meta, indent=1) + "\n")

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
        for key in ("format", "plugin", "arch"):
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
    register(Manifest.of(PoseDynamics))
