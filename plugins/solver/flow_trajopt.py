"""Joint-space trajectory optimisation under the rigid-grasp model (Dream2Flow §4.5).

After the grasp, the object's points move rigidly with the end-effector: a point ``p_i`` held at
the grasp has the fixed coordinates ``l_i = T_world_ee(q_grasp)^-1 p_i`` in the end-effector
frame, and at joints ``q`` it is at ``FK(q) l_i``. The optimiser finds joints ``q_1 .. q_K`` (the
arm at the grasp, ``q_0``, is fixed) so that these points follow the flow's targets ``P_k,i``.

Costs (nonlinear least squares; as in PyRoki, each weight scales its *residual*, which the solver
squares):

* flow, ``w_flow`` (paper w_f = 10): for every step k and every point visible at k,
  ``(FK(q_k) l_i - P_k,i) / sqrt(n_k)`` (metres; n_k = number of visible points, so every step
  weighs the same whatever its number of points); optionally Huber-robust (``robust``, metres:
  the squared distance d^2 becomes 2 delta d - delta^2 beyond delta, an addition to the paper);
* limits, ``w_limits`` (paper w_r = 100, reachability / joint limits): ``max(0, q - (hi - margin))``
  and ``max(0, (lo + margin) - q)`` per joint (radians); the iterates are also kept inside the
  limits;
* smoothness, ``w_smooth`` (paper w_s = 1): joint velocity ``q_k - q_(k-1)`` (radians per step,
  from q_0);
* manipulability, ``w_manip`` (paper w_m = 0.01): ``1 / (sqrt(det(J_v J_v^T)) + 1e-3)`` with J_v the
  3 x dof translational Jacobian (Yoshikawa's measure; larger is farther from singularities).

Solved by Levenberg-Marquardt with analytic Jacobians: the flow term's derivative is
``J_v - [FK(q) l_i - o_ee]_x J_omega`` from the embodiment's batched ``fk_jacobian`` (MuJoCo
``mj_jacSite``); the manipulability term's derivative by central differences over one batched call.
The problem's normal equations are block tridiagonal (each step couples only to its neighbours);
they are solved as one dense (K dof) x (K dof) system, which is small (50 x 7 = 350 unknowns).

Everything is world frame, metres, radians.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from d2f_core.geometry import from_frame, skew

__all__ = ["TrajoptWeights", "TrajoptResult", "optimise_tracking"]

FkJac = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
"""(K, dof) joints -> ((K, 4, 4) end-effector poses, (K, 6, dof) Jacobians, rows (v; omega))."""


@dataclass(frozen=True)
class TrajoptWeights:
    """Weights of the cost terms (see the module docstring); the defaults are the paper's."""

    flow: float = 10.0
    limits: float = 100.0
    smooth: float = 1.0
    manip: float = 0.01
    limit_margin: float = 0.05
    """radians kept from each joint limit before the limit term starts to cost."""
    robust: float = 0.0
    """Huber scale of the flow term, metres (0: plain least squares). Points farther than this from
    their target cost linearly, so a few badly tracked points do not drag the arm."""


@dataclass
class TrajoptResult:
    """Outcome of :func:`optimise_tracking`.

    Fields:
        q: (K, dof) joints; q[0] is the fixed start.
        errors: (K,) median distance between the moved points and their visible targets per step,
            metres (NaN for steps with no visible target; the median ignores a few bad tracks).
        max_error: the largest per-step error, metres; final_error: the last step's.
        cost: final total cost; iterations; seconds: wall time.
        converged: the relative cost decrease fell below the tolerance.
        history: total cost per accepted iteration.
    """

    q: np.ndarray
    errors: np.ndarray
    max_error: float
    final_error: float
    cost: float
    iterations: int
    seconds: float
    converged: bool
    history: list[float] = field(default_factory=list)


def _manip(J: np.ndarray) -> np.ndarray:
    Jv = J[:, :3, :]
    d = np.linalg.det(Jv @ np.swapaxes(Jv, 1, 2))
    return 1.0 / (np.sqrt(np.maximum(d, 0.0)) + 1e-3)


class _Problem:
    def __init__(self, fk_jac: FkJac, q0: np.ndarray, local: np.ndarray, targets: np.ndarray,
                 visible: np.ndarray, limits: np.ndarray, w: TrajoptWeights) -> None:
        self.fk_jac, self.q0, self.local, self.targets, self.w = fk_jac, q0, local, targets, w
        self.K, self.dof = targets.shape[0], q0.size
        n = visible.sum(1).astype(np.float64)
        self.scale = np.where(n > 0, 1.0 / np.sqrt(np.maximum(n, 1.0)), 0.0)  # per step
        self.vis = visible.astype(np.float64)
        self.lo = limits[:, 0] + w.limit_margin
        self.hi = limits[:, 1] - w.limit_margin

    def residuals(self, q: np.ndarray, jac: bool) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray] | None, np.ndarray]:
        """q: (K-1, dof) free joints. Returns r, (J^T J, J^T r) of the stacked residuals or None,
        and the per-step median errors (K-1,). The Gauss-Newton matrices are assembled block by block
        (flow and manipulability: one dof x dof block per step; smoothness: block tridiagonal)."""
        w, K1, dof = self.w, self.K - 1, self.dof
        T, J = self.fk_jac(q)
        P = from_frame(T, self.local)  # K1 x N x 3
        vis = self.vis[1:]
        s = self.scale[1:]
        e = (P - self.targets[1:]) * vis[..., None]
        if w.robust > 0:  # Huber on each point's distance: the residual's square is rho(|e|)
            nrm = np.linalg.norm(e, axis=2, keepdims=True)
            hub = np.where(nrm > w.robust, np.sqrt(np.maximum(2 * w.robust * nrm - w.robust ** 2, 0.0)
                                                   / np.maximum(nrm, 1e-12) ** 2), 1.0)
        else:
            hub = np.ones(e.shape[:2] + (1,))
        r_flow = w.flow * s[:, None, None] * e * hub
        dist = np.where(vis > 0, np.linalg.norm(e, axis=2), np.nan)
        with warnings.catch_warnings():  # steps without a visible point: NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            rms = np.nanmedian(dist, axis=1)
        qq = np.vstack([self.q0[None], q])
        r_smooth = w.smooth * np.diff(qq, axis=0)
        over = np.maximum(q - self.hi, 0.0)
        under = np.maximum(self.lo - q, 0.0)
        r_lim = w.limits * (over + under)
        r_man = w.manip * _manip(J) if w.manip > 0 else np.zeros(K1)
        r = np.concatenate([r_flow.reshape(-1), r_smooth.reshape(-1), r_lim.reshape(-1), r_man])
        if not jac:
            return r, None, rms
        nv = K1 * dof
        H = np.zeros((nv, nv))
        g = np.zeros(nv)
        # flow: d p / d q_k = J_v - [p - o]_x J_omega, scaled like its residual
        arm = P - T[:, None, :3, 3]
        dP = J[:, None, :3, :] - np.einsum("knab,kbj->knaj", skew(arm), J[:, 3:, :])
        dP = dP * (w.flow * s[:, None, None, None] * vis[..., None, None] * hub[..., None])
        Hb = np.einsum("knai,knaj->kij", dP, dP)
        gb = np.einsum("knai,kna->ki", dP, r_flow)
        # limits: d r / d q = +-w on the violated side (diagonal)
        d_lim = w.limits * ((q > self.hi).astype(float) - (q < self.lo).astype(float))
        Hb += np.einsum("ki,ij->kij", d_lim ** 2, np.eye(dof))
        gb += d_lim * r_lim
        if w.manip > 0:  # central differences, one batched call
            h = 1e-4
            E = h * np.eye(dof)[None]
            qp = (q[:, None, :] + E).reshape(-1, dof)
            qm = (q[:, None, :] - E).reshape(-1, dof)
            gm = (_manip(self.fk_jac(qp)[1]) - _manip(self.fk_jac(qm)[1])).reshape(K1, dof) / (2 * h) * w.manip
            Hb += np.einsum("ki,kj->kij", gm, gm)
            gb += gm * r_man[:, None]
        for k in range(K1):
            sl = slice(k * dof, (k + 1) * dof)
            H[sl, sl] += Hb[k]
        # smoothness: r_k = w (q_k - q_{k-1}), q_{-1} = q_start fixed
        ws2 = w.smooth ** 2
        for k in range(K1):
            sl = slice(k * dof, (k + 1) * dof)
            H[sl, sl] += ws2 * np.eye(dof) * (2.0 if k + 1 < K1 else 1.0)
            if k + 1 < K1:
                sn = slice((k + 1) * dof, (k + 2) * dof)
                H[sl, sn] -= ws2 * np.eye(dof)
                H[sn, sl] -= ws2 * np.eye(dof)
        gs = w.smooth * r_smooth  # d r_k/d q_k = +w, d r_{k+1}/d q_k = -w
        gsum = gs.copy()
        gsum[:-1] -= gs[1:]
        g += (gb + gsum).reshape(-1)
        return r, (H, g), rms


def optimise_tracking(fk_jac: FkJac, q_start: np.ndarray, points_local: np.ndarray, targets: np.ndarray,
                      visible: np.ndarray, joint_limits: np.ndarray, *, weights: TrajoptWeights | None = None,
                      q_init: np.ndarray | None = None, max_iterations: int = 60, tolerance: float = 1e-6
                      ) -> TrajoptResult:
    """Joints q_1..q_K-1 moving ``points_local`` (N, 3, end-effector frame) onto ``targets`` (K, N, 3).

    ``q_start`` (dof,) is the arm at the grasp (step 0, fixed); ``visible`` (K, N) masks the
    targets (a step with no visible point is steered by smoothness alone); ``joint_limits``
    (dof, 2). ``q_init`` (K, dof) seeds the solve (default: q_start at every step).
    """
    t0 = time.perf_counter()
    w = weights or TrajoptWeights()
    q0 = np.asarray(q_start, dtype=np.float64).reshape(-1)
    local = np.asarray(points_local, dtype=np.float64)
    tg = np.asarray(targets, dtype=np.float64)
    vis = np.asarray(visible, dtype=bool)
    lim = np.asarray(joint_limits, dtype=np.float64)
    K, dof = tg.shape[0], q0.size
    if tg.ndim != 3 or tg.shape[1:] != local.shape or local.ndim != 2 or local.shape[1] != 3:
        raise ValueError(f"targets: expected K x N x 3 with N = {local.shape[0]} points, got {tg.shape}")
    if vis.shape != tg.shape[:2]:
        raise ValueError(f"visible: expected {tg.shape[:2]}, got {vis.shape}")
    if lim.shape != (dof, 2):
        raise ValueError(f"joint_limits: expected ({dof}, 2), got {lim.shape}")
    if K < 2:
        raise ValueError("targets: need at least 2 steps (the start and one target)")
    vis = vis & np.isfinite(tg).all(-1)
    tg = np.where(vis[..., None], tg, 0.0)
    prob = _Problem(fk_jac, q0, local, tg, vis, lim, w)
    q = np.repeat(q0[None], K - 1, 0) if q_init is None else np.array(q_init, dtype=np.float64)[1:].copy()
    if q.shape != (K - 1, dof):
        raise ValueError(f"q_init: expected ({K}, {dof}), got {np.shape(q_init)}")
    q = np.clip(q, lim[:, 0], lim[:, 1])
    r, HG, rms = prob.residuals(q, True)
    cost = float(r @ r)
    history = [cost]
    lam, converged, it = 1e-3, False, 0
    for it in range(1, max_iterations + 1):
        assert HG is not None
        H, g = HG
        improved = False
        for _ in range(12):
            step = np.linalg.solve(H + lam * (np.diag(np.diag(H)) + 1e-9 * np.eye(H.shape[0])), -g)
            qn = np.clip(q + step.reshape(K - 1, dof), lim[:, 0], lim[:, 1])
            rn, _, _ = prob.residuals(qn, False)
            cn = float(rn @ rn)
            if cn < cost:
                improved = True
                break
            lam *= 10.0
        if not improved:
            converged = True
            break
        rel = (cost - cn) / max(cost, 1e-12)
        q, cost = qn, cn
        lam = max(lam / 3.0, 1e-7)
        r, HG, rms = prob.residuals(q, True)
        history.append(cost)
        if rel < tolerance:
            converged = True
            break
    errors = np.concatenate([[0.0], rms])
    finite = errors[np.isfinite(errors)]
    return TrajoptResult(q=np.vstack([q0[None], q]), errors=errors, max_error=float(finite.max()) if finite.size else 0.0,
                         final_error=float(errors[-1]) if np.isfinite(errors[-1]) else float("nan"), cost=cost,
                         iterations=it, seconds=time.perf_counter() - t0, converged=converged, history=history)
