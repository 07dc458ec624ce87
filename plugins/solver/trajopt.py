"""Solvers ``trajopt`` (Dream2Flow), ``avdc`` and ``rigvid``: follow object motion with a rigid grasp.

All three share the grasp, the optimiser, the B-spline / IK and the execution; they differ only in
*what object motion* the grasped points must follow, so comparing them isolates the representation
(paper §5.2):

* ``trajopt``: the 3D object flow itself (visible points only);
* ``rigvid``: one rigid transform per frame fitted to the 3D flow points (RANSAC + Kabsch, a
  6-DoF object pose track), applied to the first-frame points;
* ``avdc``: one rigid transform per frame fitted (RANSAC + Kabsch) to correspondences from dense
  2D optical flow between consecutive video frames, lifted with the aligned depth (AVDC, Ko et
  al. 2023), applied to the first-frame points. Needs the video, depth and mask in
  ``Problem.extras`` (the pipeline's plan stage puts them there).

Steps (see :mod:`.flow_trajopt` and :mod:`.execution`):

1. the end-effector pose at the chosen grasp (``embodiment.grasp_to_ee``: the embodiment must be a
   :class:`~d2f_core.protocols.GraspingArm`, capability ``grasping``) and its IK from the current
   joints;
2. the held points (``dynamics``: ``rigid-grasp``; any other model is replaced by the built-in
   rigid-grasp model, with a note in the plan) in the end-effector frame; up to
   ``num_points`` of them (farthest-point sampled) and up to ``max_steps`` flow frames;
3. the joint trajectory minimising w_flow (10) flow + w_reach (100) limits + w_smooth (1)
   smoothness + w_manip (0.01) manipulability from the grasp joints;
4. if the tracking error exceeds ``max_tracking_error`` or IK fails on the path, the motion is
   **unreachable**: reported in the plan (``executable: false``, the reason) and not executed;
5. otherwise a B-spline on the end-effector path, poses >= 1 cm or 20° apart, IK per pose
   (``ik``: ``mujoco`` or ``pybullet``), and the phases pregrasp, approach, close, follow, then
   release and retreat when ``release`` is true.

World frame, metres, radians.
"""

from __future__ import annotations

import math
import time
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from d2f_core import Grasp, Manifest, ObjectFlow, hookimpl
from d2f_core.protocols import GraspingArm, Problem, RigidGraspModel

from .execution import PhasePolicy, Segment, fit_pose_spline, ik_chain, resample_poses
from .flow_trajopt import TrajoptWeights, optimise_tracking

__all__ = ["TrajoptOptions", "TrajoptSolver", "AvdcSolver", "RigvidSolver"]


class TrajoptOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    w_flow: float = Field(default=10.0, ge=0.0, description="weight of the flow-tracking residual (paper w_f = 10)")
    w_reach: float = Field(default=100.0, ge=0.0,
                           description="weight of the reachability / joint-limit residual (paper w_r = 100)")
    w_smooth: float = Field(default=1.0, ge=0.0, description="weight of the joint-velocity residual (paper w_s = 1)")
    w_manip: float = Field(default=0.01, ge=0.0, description="weight of the inverse-manipulability residual "
                                                             "(paper w_m = 0.01)")
    limit_margin: float = Field(default=0.05, ge=0.0, le=0.5,
                                description="radians kept from each joint limit before the limit residual costs")
    robust_m: float = Field(default=0.02, ge=0.0,
                            description="Huber scale of the flow residual, metres: points tracked farther off "
                                        "than this weigh linearly (0: plain least squares, as PyRoki)")
    max_steps: int = Field(default=50, ge=2, le=500, description="flow frames used (evenly subsampled)")
    num_points: int = Field(default=64, ge=3, le=2048, description="held points used (farthest-point sampled)")
    max_iterations: int = Field(default=60, ge=1, le=1000, description="Levenberg-Marquardt iterations")
    max_tracking_error: float = Field(default=0.03, gt=0.0,
                                      description="largest per-frame median distance between the held points "
                                                  "and the flow, metres; above it the motion is unreachable and not "
                                                  "executed")
    grasp_fallbacks: int = Field(default=10, ge=0,
                                 description="when the chosen grasp (or its pre-grasp) is out of reach, try up to "
                                             "this many other candidates, nearest to it first")
    good_tracking_error: float = Field(default=0.03, gt=0.0,
                                       description="a grasp whose optimised motion follows the object this closely "
                                                   "(metres, as max_tracking_error) is taken at once; otherwise up "
                                                   "to grasp_attempts grasps are optimised and the closest wins")
    grasp_attempts: int = Field(default=4, ge=1,
                                description="reachable grasps whose motion is optimised before the motion is "
                                            "declared unreachable")
    ik: Literal["mujoco", "pybullet"] = Field(default="mujoco",
                                              description="IK of the resampled poses: the embodiment's MuJoCo "
                                                          "IK or PyBullet's with pybullet_data's Panda")
    ik_position_tolerance: float = Field(default=0.005, gt=0.0, description="IK miss above this is a failure, m")
    ik_rotation_tolerance: float = Field(default=0.05, gt=0.0, description="IK miss above this is a failure, rad")
    min_step_m: float = Field(default=0.01, gt=0.0, description="resampled poses at least this far apart, metres "
                                                                "(or min_step_deg turned)")
    min_step_deg: float = Field(default=20.0, gt=0.0, description="... or at least this much turned, degrees")
    spline_smoothing: float = Field(default=0.0, ge=0.0,
                                    description="B-spline smoothing, metres^2 per pose (0 interpolates)")
    approach_distance: float = Field(default=0.10, ge=0.0,
                                     description="pre-grasp stand-off along the approach axis, metres")
    grip_steps: int = Field(default=15, ge=1, description="control steps to close or open the gripper")
    release: bool = Field(default=True, description="open the gripper and back off at the end (false: hold on)")
    retreat_distance: float = Field(default=0.10, ge=0.0, description="back-off after release, metres")
    speed: float = Field(default=0.25, gt=0.0, le=1.0,
                         description="joint speed as a fraction of the embodiment's velocity limits")
    control_hz: float = Field(default=20.0, gt=0.0, description="control rate of the world, Hz (steps per second)")
    settle_tolerance: float = Field(default=0.02, gt=0.0,
                                    description="a phase ends when every joint is this close to its target, rad")
    max_wait: int = Field(default=30, ge=0, description="control steps to wait for a phase to settle")
    # avdc only
    flow_method: Literal["farneback", "dis"] = Field(default="farneback",
                                                     description="avdc: OpenCV dense optical flow method")
    seed: int = Field(default=0, description="seed of the point sampling and RANSAC")


def _fk_jac(emb: Any):
    """Batched (T N x 4 x 4, J N x 6 x dof) of joint vectors N x dof: the embodiment's optional
    ``fk_jacobian`` extra (documented on GraspingArm) when it has one, else fk and jacobian per row."""
    f = getattr(emb, "fk_jacobian", None)
    if callable(f):
        def batched(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            T, J = f(q)
            return np.asarray(T).reshape(-1, 4, 4), np.asarray(J).reshape(len(q), 6, -1)
        return batched

    def loop(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (np.stack([emb.fk(x) for x in q]), np.stack([emb.jacobian(x) for x in q]))
    return loop


def _subsample(n: int, m: int) -> np.ndarray:
    return np.unique(np.round(np.linspace(0, n - 1, min(n, m))).astype(int))


class _Unreachable(Exception):
    pass


class TrajoptSolver:
    """Follow the 3D object flow with a rigid grasp (see the module docstring)."""

    name, kind, Options = "trajopt", "solver", TrajoptOptions
    capabilities = frozenset({"needs_grasp", "deterministic"})
    uses = {"dynamics": "rigid_grasp"}
    """Acting components it can use (also its manifest's ``uses``): a rigid-grasp dynamics model or none
    (the three solvers optimise under a rigid grasp: a configured dynamics model must be a RigidGraspModel)."""
    extra, requires = "sim", ("scipy",)
    description = ("rigid-grasp trajectory optimisation following the 3D object flow (w_f 10, "
                   "w_r 100, w_s 1, w_m 0.01), B-spline + IK, executed with joint targets")
    verified = ("tracks a known reachable flow within 5 mm; unreachable flows refused (tests/test_trajopt.py); "
                "closed-loop success in robosuite tasks (benchmarks/closed_loop.py)")
    motion = "3D object flow"

    def __init__(self, options: TrajoptOptions | None = None) -> None:
        self.options = options or TrajoptOptions()

    # -------------------------------------------------------------- what to follow
    def targets(self, problem: Problem) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """(T x N x 3 targets, T x N visible, info) for every flow point: what the held points follow."""
        f = problem.flow
        return f.points.astype(np.float64), f.visible.copy(), {}

    @staticmethod
    def _warm_start(ik, local: np.ndarray, tg: np.ndarray, vis: np.ndarray, q_grasp: np.ndarray) -> np.ndarray:
        """Initial joints per step: the end-effector pose that best moves the held points onto
        each step's visible targets (Kabsch), solved by IK from the previous step's joints. A
        step with fewer than 3 visible targets keeps the previous joints. The optimiser starts
        here instead of at the grasp joints, so it does not stall in a poor local minimum."""
        from d2f_core.flow.quality import kabsch

        q = [np.asarray(q_grasp, dtype=np.float64)]
        for k in range(1, tg.shape[0]):
            v = vis[k]
            if v.sum() < 3:
                q.append(q[-1])
                continue
            R, t = kabsch(local[v], tg[k, v])
            T = np.eye(4)
            T[:3, :3], T[:3, 3] = R, t
            q.append(np.asarray(ik(T, q[-1]).q, dtype=np.float64))
        return np.stack(q)

    # -------------------------------------------------------------- solve
    def solve(self, problem: Problem) -> PhasePolicy:
        o = self.options
        t_start = time.perf_counter()
        emb, flow, grasp, dyn = problem.embodiment, problem.flow, problem.grasp, problem.dynamics
        if not isinstance(flow, ObjectFlow):
            raise ValueError(f"flow: expected a d2f_core.ObjectFlow (points T x N x 3, visible T x N), got "
                             f"{type(flow).__name__}; wrap arrays with ObjectFlow(points=..., visible=...)")
        if grasp is None:
            raise ValueError(f"grasp: solver {self.name} needs one; configure a grasper (e.g. `grasper: {{plugin: "
                             "antipodal}`)")
        notes: list[str] = []
        if dyn is None:  # no model configured: the optimiser's own model, named in the plan
            from d2f_plugins.dynamics.rigid_grasp import RigidGraspDynamics

            dyn = RigidGraspDynamics()
            dyn_used = "rigid-grasp (built-in default: no dynamics configured)"
        elif isinstance(dyn, RigidGraspModel):
            dyn_used = str(getattr(dyn, "name", type(dyn).__name__))
        else:  # the optimiser's model is the rigid grasp; another model cannot stand in for it
            raise ValueError(f"dynamics: solver {self.name} optimises under a rigid grasp and cannot use "
                             f"{getattr(dyn, 'name', type(dyn).__name__)!r} (it lacks the RigidGraspModel methods "
                             "attach, local, moved, grasped); set `dynamics: {plugin: rigid-grasp}` or remove it")
        if not isinstance(emb, GraspingArm):
            raise ValueError(f"embodiment: solver {self.name} grasps the object but {getattr(emb, 'name', emb)!r} is "
                             "not a GraspingArm (capability 'grasping': T_ee_grasp, gripper_open/gripper_closed, "
                             "grasp_to_ee; see d2f_core.protocols); use an arm with a gripper, e.g. `embodiment: "
                             "{plugin: franka}` or `{plugin: robosuite-arm, options: {robot: UR5e}}`")
        from .ik_backends import make_ik

        ik_backend = make_ik(o.ik, emb)
        ik = ik_backend.ik
        q_now = np.asarray(problem.observation.joints, dtype=np.float64)
        lim = np.asarray(emb.joint_limits, dtype=np.float64)
        info: dict[str, Any] = {"solver": self.name, "motion": self.motion, "ik": o.ik, "notes": notes,
                                "dynamics": dyn_used,
                                "weights": {"w_flow": o.w_flow, "w_reach": o.w_reach, "w_smooth": o.w_smooth,
                                            "w_manip": o.w_manip}}

        def refuse(reason: str) -> PhasePolicy:
            info.update(executable=False, reason=reason, seconds=round(time.perf_counter() - t_start, 3))
            return PhasePolicy([], emb.joint_action, np.ones(emb.dof), info=info, executable=False)

        # the motion to follow, for every flow point (the held ones are picked per grasp)
        tg_all, vis_all, tinfo = self.targets(problem)
        info.update(tinfo)
        steps = _subsample(tg_all.shape[0], o.max_steps)
        p0 = flow.points[0].astype(np.float64)
        weights = TrajoptWeights(flow=o.w_flow, limits=o.w_reach, smooth=o.w_smooth, manip=o.w_manip,
                                 limit_margin=o.limit_margin, robust=o.robust_m)
        from d2f_core.flow.sampling import farthest_point_sampling

        # 1-3. the grasp: the chosen one, else the nearest candidates (each also turned 180 deg about
        # its approach axis); the first whose grasp and pre-grasp are reachable and whose optimised
        # motion follows the object within max_tracking_error is used
        T_ee_grasp = np.asarray(emb.T_ee_grasp, dtype=np.float64)
        g_open, g_closed = float(emb.gripper_open), float(emb.gripper_closed)
        ranked = [grasp] + [c for c in (problem.extras.get("grasp_candidates") or [])[1:]
                            if c is not grasp][:o.grasp_fallbacks]
        flip = np.diag([-1.0, -1.0, 1.0, 1.0])
        ranked = [c2 for c in ranked for c2 in (c, Grasp(T_world_grasp=c.T_world_grasp @ flip, width=c.width,
                                                          score=c.score, source=c.source))]
        tried: list[str] = []
        best: dict[str, Any] | None = None
        optimised = 0
        for n, cand in enumerate(ranked):
            T_grasp_ee = np.asarray(emb.grasp_to_ee(cand.T_world_grasp, cand.width), dtype=np.float64)
            approach = T_grasp_ee[:3, :3] @ T_ee_grasp[:3, 2]
            approach = approach / np.linalg.norm(approach)
            g_ik = ik(T_grasp_ee, q_now)
            T_pre = T_grasp_ee.copy()
            T_pre[:3, 3] -= o.approach_distance * approach
            pre = ik(T_pre, g_ik.q)
            miss = [f"{w} {1000 * r.position_error:.0f} mm / {math.degrees(r.rotation_error):.0f} deg off"
                    for w, r in (("grasp", g_ik), ("pre-grasp", pre))
                    if r.position_error > o.ik_position_tolerance or r.rotation_error > o.ik_rotation_tolerance]
            if miss:
                tried.append(f"candidate {n // 2}{' turned' if n % 2 else ''}: " + "; ".join(miss))
                continue
            q_grasp = np.asarray(g_ik.q, dtype=np.float64)
            T_at_grasp = emb.fk(q_grasp)
            near = np.nonzero(flow.visible[0] & dyn.grasped(p0, cand.position))[0]
            if near.size < 3:
                tried.append(f"candidate {n // 2}: only {near.size} visible flow points near it")
                continue
            held = near[farthest_point_sampling(p0[near], min(o.num_points, near.size), seed=o.seed)]
            tg, vis = tg_all[steps][:, held].copy(), vis_all[steps][:, held].copy()
            dyn.attach(T_at_grasp)
            local = dyn.local(p0[held])
            tg[0], vis[0] = dyn.moved(local, T_at_grasp)[0], True  # step 0 is where the grasp holds them
            # two starts: the grasp joints held, and an IK warm start; the lower cost wins
            res, start = None, ""
            for q_init in (None, self._warm_start(ik, local, tg, vis, q_grasp)):
                r = optimise_tracking(_fk_jac(emb), q_grasp, local, tg, vis, lim, weights=weights,
                                      q_init=q_init, max_iterations=o.max_iterations)
                if res is None or r.cost < res.cost:
                    res, start = r, ("grasp joints" if q_init is None else "IK warm start")
            optimised += 1
            tried.append(f"candidate {n // 2}{' turned' if n % 2 else ''}: tracks within "
                         f"{1000 * res.max_error:.0f} mm")
            att = dict(grasp=cand, n=n, q_grasp=q_grasp, T_grasp_ee=T_grasp_ee, T_pre=T_pre, pre=pre, held=held,
                       tg=tg, vis=vis, local=local, T_at_grasp=T_at_grasp, res=res, start=start)
            if best is None or res.max_error < best["res"].max_error:
                best = att
            if res.max_error <= o.good_tracking_error or optimised >= o.grasp_attempts:
                break
        if best is None:
            info["grasp"] = {"tried": tried}
            return refuse(f"no grasp is within reach: tried {len(tried)} candidate pose(s) nearest the chosen one "
                          f"(first: {tried[0] if tried else 'none'})")
        grasp, res, held, tg, vis, local = best["grasp"], best["res"], best["held"], best["tg"], best["vis"], best["local"]
        q_grasp, T_grasp_ee, T_pre, pre = best["q_grasp"], best["T_grasp_ee"], best["T_pre"], best["pre"]
        dyn.attach(best["T_at_grasp"])
        info["grasp"] = {"position": [round(float(v), 4) for v in grasp.position], "width_m": round(grasp.width, 4),
                         "source": grasp.source, "candidate_rank": best["n"] // 2,
                         "turned_180deg": best["n"] % 2 == 1, "tried": tried}
        poses = np.stack([emb.fk(q) for q in res.q])
        predicted = dyn.moved(local, poses)
        info["optimiser"] = {"seconds": round(res.seconds, 3), "iterations": res.iterations, "start": best["start"],
                             "converged": res.converged, "steps": int(len(steps)), "points": int(len(held)),
                             "max_error_mm": round(1000 * res.max_error, 2),
                             "final_error_mm": round(1000 * res.final_error, 2),
                             "errors_mm": [round(1000 * float(e), 2) if np.isfinite(e) else None for e in res.errors]}
        self.last = {"targets": tg, "visible": vis, "predicted": predicted, "q": res.q, "held": held}
        if res.max_error > o.max_tracking_error:
            k = int(np.nanargmax(res.errors))
            return refuse(f"the object motion is unreachable: with the best of {optimised} grasp(s) tried the held "
                          f"points stay {1000 * res.max_error:.0f} mm (median) from the motion at frame "
                          f"{int(steps[k])} (limit max_tracking_error = {1000 * o.max_tracking_error:.0f} mm)")

        # 4. B-spline, resampling, IK
        path = fit_pose_spline(poses, o.spline_smoothing)
        wp = resample_poses(path, o.min_step_m, math.radians(o.min_step_deg))
        chain = ik_chain(ik, wp, q_grasp, position_tolerance=o.ik_position_tolerance,
                         rotation_tolerance=o.ik_rotation_tolerance)
        info["path"] = {"waypoints": int(len(wp)),
                        "ik_max_error_mm": round(1000 * float(chain.position_errors.max()), 2),
                        "ik_max_error_deg": round(math.degrees(float(chain.rotation_errors.max())), 2)}
        if chain.failures:
            i = chain.failures[0]
            return refuse(f"IK ({o.ik}) fails on {len(chain.failures)} of {len(wp)} path poses (first: pose {i}, "
                          f"{1000 * chain.position_errors[i]:.1f} mm off)")

        # 5. phases
        segs: list[Segment] = []

        def line(T_from: np.ndarray, T_to: np.ndarray, q_seed: np.ndarray, what: str) -> np.ndarray:
            n = max(1, int(math.ceil(np.linalg.norm(T_to[:3, 3] - T_from[:3, 3]) / 0.01)))
            Ts = np.repeat(T_to[None], n, 0)
            for j in range(n):
                Ts[j, :3, 3] = T_from[:3, 3] + (T_to[:3, 3] - T_from[:3, 3]) * (j + 1) / n
            c = ik_chain(ik, Ts, q_seed, position_tolerance=o.ik_position_tolerance,
                         rotation_tolerance=o.ik_rotation_tolerance)
            if c.failures:
                raise _Unreachable(f"IK fails on the {what} ({1000 * c.position_errors[c.failures[0]]:.1f} mm off)")
            return c.q

        try:
            q_approach = line(T_pre, T_grasp_ee, pre.q, "approach")
            segs += [Segment("pregrasp", np.asarray(pre.q)[None], g_open),
                     Segment("approach", q_approach, g_open),
                     Segment("close", q_approach[-1:], g_closed, hold=o.grip_steps, settle=False),
                     Segment("follow", chain.q, g_closed)]
            if o.release:
                T_end = emb.fk(chain.q[-1])
                back = T_end[:3, :3] @ T_ee_grasp[:3, 2]
                segs.append(Segment("release", chain.q[-1:], g_open, hold=o.grip_steps, settle=False))
                for dist in (o.retreat_distance, 0.5 * o.retreat_distance, 0.25 * o.retreat_distance):
                    T_back = T_end.copy()  # back off along the approach axis, as far as reachable
                    T_back[:3, 3] -= dist * back / np.linalg.norm(back)
                    try:
                        segs.append(Segment("retreat", line(T_end, T_back, chain.q[-1], "retreat"), g_open))
                        info["retreat_m"] = dist
                        break
                    except _Unreachable:
                        continue
                else:
                    info["retreat_m"] = 0.0  # released in place
        except _Unreachable as e:
            return refuse(str(e))
        # the planned end-effector path for viewers (`d2f view`): every phase's joint waypoints through FK,
        # and the optimised pose at each flow frame it tracked (4x4 world poses, 0.01 mm)
        info["path"]["ee_phases"] = [{"phase": s.name, "gripper": s.gripper,
                                      "T_world_ee": np.round(np.stack([emb.fk(q) for q in s.q]), 5).tolist()}
                                     for s in segs]
        info["path"]["ee_at_flow_frames"] = {"frames": [int(v) for v in steps],
                                             "T_world_ee": np.round(poses, 5).tolist()}
        max_step = o.speed * np.asarray(emb.velocity_limits, dtype=np.float64) / o.control_hz
        info.update(executable=True, reason="", seconds=round(time.perf_counter() - t_start, 3),
                    phases=[s.name for s in segs])
        horizon = getattr(problem.world, "horizon", None)
        pol = PhasePolicy(segs, emb.joint_action, max_step, tolerance=o.settle_tolerance, max_wait=o.max_wait,
                          info=info, max_actions=int(horizon) if horizon else None)
        return pol


def _rigidly_moved(track: Any, flow: ObjectFlow) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """The baselines' targets: every first-frame flow point moved by the per-frame rigid transform,
    "visible" wherever the transform was estimated."""
    from .rigid_tracks import apply

    pts = apply(track, flow.points[0].astype(np.float64))
    vis = np.repeat(track.valid[:, None], flow.num_points, 1)
    return pts, vis, {"rigid_track": {"valid_frames": int(track.valid.sum()),
                                      "rms_mm": [round(1000 * float(x), 2) for x in track.rms_m]}}


class RigvidSolver(TrajoptSolver):
    """Baseline: a rigid 6-DoF object pose track fitted to the 3D flow points (RIGVid-style)."""

    name = "rigvid"
    description = ("baseline: rigid object pose track fitted to the 3D flow, same grasp and "
                   "execution as trajopt")
    motion = "rigid pose track fitted to the 3D flow (RANSAC + Kabsch per frame)"

    def targets(self, problem: Problem) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        from .rigid_tracks import rigid_track_from_flow

        f = problem.flow
        return _rigidly_moved(rigid_track_from_flow(f.points, f.visible, seed=self.options.seed), f)


class AvdcSolver(TrajoptSolver):
    """Baseline: rigid transforms from dense 2D optical flow lifted with depth (AVDC)."""

    name = "avdc"
    requires = ("scipy", "cv2")
    description = ("baseline: rigid transforms from dense optical flow + depth (AVDC), same grasp "
                   "and execution as trajopt")
    motion = "rigid transforms from dense optical flow + depth (RANSAC + Kabsch per frame pair)"

    def targets(self, problem: Problem) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        from .rigid_tracks import avdc_track

        ex = problem.extras
        missing = [k for k in ("video", "depth", "mask") if ex.get(k) is None]
        if missing:
            raise ValueError(f"solver avdc: needs the video, its aligned depth and the object mask in "
                             f"Problem.extras (missing: {', '.join(missing)}); run it through the pipeline "
                             "with video, depth and segmenter configured")
        video, depth = ex["video"], ex["depth"]
        frames = getattr(video, "frames", video)
        d = getattr(depth, "depth", depth)
        cam = problem.observation.rgbd.camera if problem.observation.rgbd is not None else ex.get("camera")
        track = avdc_track(np.asarray(frames), np.asarray(d, dtype=np.float32), np.asarray(ex["mask"], bool), cam,
                           flow_method=self.options.flow_method, seed=self.options.seed)
        return _rigidly_moved(track, problem.flow)


@hookimpl
def d2f_register(register):
    register(Manifest.of(TrajoptSolver))
    register(Manifest.of(RigvidSolver))
    register(Manifest.of(AvdcSolver))
