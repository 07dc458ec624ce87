"""Embodiment ``franka-deoxys``: the real Franka Panda through UT Austin's Deoxys.

:class:`DeoxysFranka` is a :class:`~d2f_core.protocols.GraspingArm` like the simulated ``franka``: same
joints, limits, grip-site end-effector, FK / Jacobian / IK and grasp frame (a standalone robosuite
Panda, :class:`~.arm_model.ArmModel`, the kinematics module the simulated arms share; this module
does not import :mod:`.robosuite_robots`, nor it this one), and it drives the real arm with Deoxys'
JOINT_IMPEDANCE controller: action = 7 absolute joint targets (rad) + gripper. Its options
(:class:`DeoxysFrankaOptions`) are the kinematics options plus the Deoxys, dry-run and safety ones.

**Frames**: the robot's base frame (Franka ``link0``, robosuite's ``robot0_base``) is the world frame
unless option ``T_world_base`` (4x4, metres) is given; then ``fk``/``jacobian``/``ik`` and the
workspace box are in the world frame through it (``fk = T_world_base @ fk_base``; the Jacobian's
rows are rotated). The end-effector is robosuite's PandaGripper grip site (between the fingertips,
9.65 cm beyond the flange); the real Franka Hand's TCP (10.34 cm) differs by ~7 mm along z.

**Safety** (:mod:`.safety`): every command goes through a :class:`~.safety.SafetyGuard` *before*
it can be sent (joint limits minus ``joint_margin``, ``max_joint_step``, speed ``|dq| * control_hz
<= velocity_scale * velocity_limits``, finite numbers, gripper in [-1, 1], end-effector inside
``workspace_min``..``workspace_max`` by FK of the commanded joints). A violation raises
:class:`~.safety.SafetyError` and nothing is sent; commands are never clipped. The step is
measured from the previous commanded target (Deoxys' NUC interpolates from its previous goal),
or from the measured joints before the first command. ``execute`` validates the whole
interpolated trajectory before sending its first command.

**Dry run** (``dry_run: true``, the default): Deoxys is never imported and no robot is needed; the
joints start at ``dry_run_start_q`` (default ``home_q``) and follow the accepted commands; every
would-be command (and every rejection) is kept in ``command_log`` and appended as one JSON line to
``dry_run_log`` when set: ``{"event": "command", "seq", "t" (s since start), "controller_type",
"action" (8 numbers)}`` or ``{"event": "rejected", "t", "error", "check", "action"}`` (the
rejected action; null for a rejected ``execute`` trajectory; NaN/inf written as strings), plus
``"open"``/``"close"`` events.

**Rate**: ``send`` waits so that commands leave at most ``control_hz`` per second (a deadline
clock, no catch-up burst after a slow step); Deoxys' ``control()`` also sleeps to its
``control_freq`` (set to ``control_hz``).

**Gripper** (the action's 8th entry, d2f's one convention: :data:`~d2f_core.protocols.GRIPPER_OPEN` -1
open .. :data:`~d2f_core.protocols.GRIPPER_CLOSED` +1 closed): Deoxys'
``FrankaInterface.gripper_control(a)`` opens to width ``0.08 * |a|`` m when ``a < 0`` and grasps
(closes with 30 N) when ``a >= 0``. So Deoxys has no "hold" value; ``joint_action(q, gripper=0.0)``
(the protocol default, "keep" in the sim) repeats the last gripper command (initially -1: Deoxys
opens the gripper when its controller starts, ``automatic_gripper_reset``).

**Upstream API relied on** (github.com/UT-Austin-RPL/deoxys_control, read at commit 97396fd):

* ``deoxys/deoxys/franka_interface/franka_interface.py``: ``FrankaInterface(general_cfg_file=
  "config/local-host.yml", control_freq=20.0, state_freq=100.0, control_timeout=1.0,
  has_gripper=True, use_visualizer=False, automatic_gripper_reset=True)``;
  ``control(controller_type, action, controller_cfg=None, termination=False)`` (JOINT_IMPEDANCE
  asserts ``len(action) == 7 + 1``, sends ``action[:7]`` as the joint goal, absolute unless
  ``controller_cfg.is_delta``, then ``gripper_control(action[-1])``; it sleeps to
  ``control_freq``); properties ``last_q`` (7,) or None, ``last_gripper_q`` (width, m) or None,
  ``state_buffer_size``; ``close()`` (joins the state thread).
* ``deoxys/deoxys/utils/config_utils.py``: ``get_default_controller_config(controller_type)`` (reads
  ``config_root/joint-impedance-controller.yml``), ``verify_controller_config(controller_cfg,
  use_default=True)``; ``deoxys/deoxys/utils/yaml_config.py``: ``YamlConfig(filename).as_easydict()``;
  ``deoxys/deoxys/__init__.py``: ``config_root``.
* ``deoxys/config/joint-impedance-controller.yml``: ``controller_type: JOINT_IMPEDANCE``,
  ``is_delta: false``, ``traj_interpolator_cfg: {traj_interpolator_type: LINEAR_JOINT_POSITION,
  time_fraction: 0.3}``, ``joint_kp``/``joint_kd``.
* NUC side (``franka-interface/include/utils/traj_interpolators/linear_joint_position_traj_interpolator.h``):
  each new goal is reached from the previous goal in ``time_fraction / POLICY_RATE`` seconds
  (``POLICY_RATE`` from the interface YAML's ``CONTROL``, default 20). Hence ``control_hz`` must
  equal ``POLICY_RATE`` and the interpolated speed is ``velocity_scale / time_fraction`` (x 1.875
  for MIN_JERK_JOINT_POSITION) of the limit: the backend refuses settings making that exceed 1.
* ``examples/joint_impedance_control.py``: wait for ``state_buffer_size > 0``, read ``last_q``, send
  ``list(q) + [-1.0]`` with ``controller_type="JOINT_IMPEDANCE"``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from pydantic import Field, field_validator, model_validator

from d2f_core import IKResult, Manifest, hookimpl
from d2f_core.protocols import GRIPPER_CLOSED, GRIPPER_OPEN
from d2f_core.gl import configure_headless_gl
from d2f_core.registry import PluginUnavailableError

from .arm_model import ArmKinematicsOptions, ArmModel
from .safety import PANDA_VELOCITY_LIMITS, SafetyError, SafetyGuard, SafetyLimits

__all__ = ["DeoxysFranka", "DeoxysFrankaOptions", "RateLimiter", "CONTROLLER_TYPE", "INSTALL", "PLUGIN"]

PLUGIN = "franka-deoxys"
"""The embodiment plugin name of this backend."""

log = logging.getLogger(__name__)

CONTROLLER_TYPE = "JOINT_IMPEDANCE"
DEFAULT_TIME_FRACTION = 0.3  # deoxys config/joint-impedance-controller.yml
DEFAULT_POLICY_RATE = 20  # franka-interface: CONTROL.POLICY_RATE when the YAML has none
_INTERPOLATOR_PEAK = {"LINEAR_JOINT_POSITION": 1.0, "MIN_JERK_JOINT_POSITION": 1.875}

INSTALL = ("install UT Austin's deoxys_control (it is not on PyPI; the PyPI package 'deoxys' is an unrelated "
           "project): git clone https://github.com/UT-Austin-RPL/deoxys_control; cd deoxys_control/deoxys; "
           "./InstallPackage; make -j build_deoxys=1 (builds the protobuf modules); pip install -U -r "
           "requirements.txt; pip install -e . (i.e. `pip install -e deoxys` from the clone); run franka-interface "
           "and gripper-interface on the NUC per its docs; then set embodiment option deoxys_config to your "
           "interface YAML (e.g. deoxys_control/deoxys/config/charmander.yml). Or keep dry_run: true")


class DeoxysFrankaOptions(ArmKinematicsOptions):
    """Options of ``franka-deoxys``: the Panda kinematics options (:class:`~.arm_model.ArmKinematicsOptions`)
    plus Deoxys, dry run and the safety layer (:mod:`.safety`)."""

    deoxys_config: str | None = Field(
        default=None, description="Deoxys interface YAML (PC/NUC addresses and ports, e.g. "
                                  "deoxys_control/deoxys/config/charmander.yml); a bare file name is looked up in "
                                  "deoxys.config_root. Needed unless dry_run")
    controller_config: str | None = Field(
        default=None, description="JOINT_IMPEDANCE controller YAML (is_delta must be false); default: Deoxys' "
                                  "default JOINT_IMPEDANCE config (joint-impedance-controller.yml)")
    control_hz: float = Field(default=20.0, gt=0.0, le=100.0,
                              description="command rate, Hz; must equal CONTROL.POLICY_RATE of the NUC's config "
                                          "(Deoxys' default 20)")
    dry_run: bool = Field(default=True, description="check and log every command (dry_run_log) but never import "
                                                    "Deoxys nor move the robot")
    dry_run_log: str | None = Field(default=None,
                                    description="dry_run: JSONL file the would-be commands are appended to "
                                                "(default: kept in memory only, `command_log`)")
    dry_run_start_q: list[float] | None = Field(
        default=None, description="dry_run: the simulated starting joint positions, 7 radians (default: home_q)")
    T_world_base: list[list[float]] | None = Field(
        default=None, description="4x4 pose of the robot base (Franka link0) in the world frame, metres; "
                                  "fk/ik/workspace are in the world frame through it (default: identity, the base "
                                  "frame is the world frame)")
    workspace_min: list[float] = Field(default=[0.2, -0.5, 0.02],
                                       description="lower corner (x, y, z) of the box the end-effector must stay in, "
                                                   "world frame, metres")
    workspace_max: list[float] = Field(default=[0.8, 0.5, 0.8],
                                       description="upper corner (x, y, z) of the end-effector box, world frame, "
                                                   "metres")
    max_joint_step: float = Field(default=0.05, gt=0.0, le=0.5,
                                  description="largest change of any joint between two commands, rad")
    velocity_scale: float = Field(default=0.25, gt=0.0, le=1.0,
                                  description="fraction of velocity_limits a command may ask for (step x control_hz); "
                                              "at most the controller's time_fraction (0.3 by default): Deoxys "
                                              "reaches each target in time_fraction of a period")
    joint_margin: float = Field(default=0.05, ge=0.0, le=0.3,
                                description="rad kept clear of each Panda joint limit")
    state_timeout: float = Field(default=5.0, gt=0.0, description="seconds to wait for the first robot state")

    @field_validator("dry_run_start_q")
    @classmethod
    def _start_q(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and (len(v) != 7 or not all(math.isfinite(x) for x in v)):
            raise ValueError("expected 7 finite joint positions, radians")
        return v

    @field_validator("T_world_base")
    @classmethod
    def _T(cls, v: list[list[float]] | None) -> list[list[float]] | None:
        if v is not None:
            from .robosuite_kinematics import check_pose

            check_pose(v, "T_world_base")
        return v

    @field_validator("workspace_min", "workspace_max")
    @classmethod
    def _xyz(cls, v: list[float]) -> list[float]:
        if len(v) != 3 or not all(math.isfinite(x) for x in v):
            raise ValueError("expected [x, y, z], metres")
        return v

    @model_validator(mode="after")
    def _box(self) -> "DeoxysFrankaOptions":
        if any(a >= b for a, b in zip(self.workspace_min, self.workspace_max)):
            raise ValueError(f"workspace_min {self.workspace_min} must be below workspace_max {self.workspace_max} "
                             "on x, y and z")
        return self


class RateLimiter:
    """Waits so that successive ``wait()`` calls return at most ``hz`` times per second.

    Deadline-based: each return is scheduled one period after the previous one; when a caller is
    late the schedule restarts from now (no burst of catch-up calls). ``clock``/``sleep`` are
    injectable (seconds).
    """

    def __init__(self, hz: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not (math.isfinite(hz) and hz > 0):
            raise ValueError(f"hz: expected a rate > 0, got {hz!r}")
        self.period = 1.0 / hz
        self.clock = clock
        self.sleep = sleep
        self._last: float | None = None

    def wait(self) -> float:
        """Sleep until the next slot; returns the time (clock) of the slot."""
        now = self.clock()
        if self._last is not None:
            target = self._last + self.period
            if now < target:
                self.sleep(target - now)
                now = max(target, self.clock())
        self._last = now
        return now

    def reset(self) -> None:
        self._last = None


def _read_yaml(path: str, option: str) -> Any:
    import yaml

    try:
        with open(path) as f:
            return yaml.safe_load(f)
    except OSError as e:
        raise ValueError(f"{option}: cannot read {path!r} ({e}); give the path of an existing YAML file") from None
    except yaml.YAMLError as e:
        raise ValueError(f"{option}: {path!r} is not valid YAML ({e})") from None


def _get(cfg: Any, key: str, default: Any = None) -> Any:
    try:
        return cfg[key] if key in cfg else default
    except TypeError:
        return default


class DeoxysFranka:
    """The real Franka through Deoxys as a d2f Embodiment (see the module docstring).

    Public attributes beyond the GraspingArm protocol: ``arm_model`` (the standalone
    :class:`~.arm_model.ArmModel` of the Panda doing the kinematics), ``arm`` ("right"), ``home_q``,
    ``fixed_jaw``, ``ik_settings``, ``T_world_base``, ``guard`` (:class:`~.safety.SafetyGuard`),
    ``limits``, ``dry_run``, ``command_log`` (list of dicts), ``world``, ``last_ik``,
    ``time_fraction``.

    ``options``: :class:`DeoxysFrankaOptions` (default: all defaults, a dry run).
    ``clock``/``sleep`` (seconds) are injectable for tests; the factory uses the real ones.
    """

    name, kind, Options = PLUGIN, "embodiment", DeoxysFrankaOptions
    robot = "Panda"
    capabilities = frozenset({"ik", "hardware", "grasping"})
    description = ("the real Franka Panda through Deoxys (JOINT_IMPEDANCE, 20 Hz, safety layer; dry run by "
                   "default: no robot, no Deoxys), the simulated franka's kinematics")
    extra, requires = "sim", ("mujoco", "robosuite")
    install = "pip install 'dream2flow[sim]' for the Panda kinematics; for the real robot also " + INSTALL
    verified = ("against a Deoxys stand-in following its Python API (tests/test_deoxys_backend.py): safety "
                "limits, rate, dry-run log, JOINT_IMPEDANCE actions")
    gripper_open = GRIPPER_OPEN
    gripper_closed = GRIPPER_CLOSED

    def __init__(self, options: DeoxysFrankaOptions | None = None, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        options = options if options is not None else DeoxysFrankaOptions()
        self.options = options
        self.arm_model = ArmModel(PLUGIN, "Panda", options, arm="right", velocity_limits=PANDA_VELOCITY_LIMITS)
        self.arm = self.arm_model.arm
        self.dof = self.arm_model.dof
        self.joint_names = self.arm_model.joint_names
        self.joint_limits = self.arm_model.joint_limits
        self.velocity_limits = self.arm_model.velocity_limits
        self.home_q = self.arm_model.home_q
        self.T_ee_grasp = self.arm_model.T_ee_grasp
        self.ik_settings = self.arm_model.ik_settings
        self.fixed_jaw = self.arm_model.fixed_jaw
        over = np.nonzero(self.velocity_limits > np.array(PANDA_VELOCITY_LIMITS) + 1e-12)[0]
        if over.size:
            raise ValueError(f"velocity_limits: {self.velocity_limits.tolist()} exceed the Panda's datasheet limits "
                             f"{list(PANDA_VELOCITY_LIMITS)} rad/s (joint {int(over[0]) + 1}); the real robot may not "
                             "be commanded faster: leave velocity_limits unset or lower it")
        T = np.eye(4) if options.T_world_base is None else np.array(options.T_world_base, dtype=np.float64)
        T.flags.writeable = False
        self.T_world_base = T
        self._T_base_world = np.linalg.inv(T)
        self.dry_run = bool(options.dry_run)
        self.control_hz = float(options.control_hz)
        self.world: Any = None
        self.last_ik: IKResult | None = None
        self.command_log: list[dict[str, Any]] = []
        self._clock, self._sleep = clock, sleep
        self._t0 = clock()
        self.rate = RateLimiter(self.control_hz, clock, sleep)

        # controller config facts needed before anything is sent (read without Deoxys)
        self.time_fraction, interp = self._controller_facts()
        peak = _INTERPOLATOR_PEAK[interp] * options.velocity_scale / self.time_fraction
        if peak > 1.0 + 1e-9:
            raise ValueError(
                f"velocity_scale: {options.velocity_scale} with the controller's {interp} interpolator and "
                f"time_fraction {self.time_fraction}: Deoxys reaches each target in time_fraction / control_hz s, so "
                f"the joints would be asked for up to {peak:.2f}x their velocity limits; lower velocity_scale to <= "
                f"{self.time_fraction / _INTERPOLATOR_PEAK[interp]:.3g} (or raise time_fraction in controller_config)")
        if options.deoxys_config is not None:
            self._check_policy_rate(self._interface_path(options.deoxys_config, resolve=False))
        elif not self.dry_run:
            raise ValueError("deoxys_config: the real robot needs the Deoxys interface YAML (PC/NUC addresses, e.g. "
                             "deoxys_control/deoxys/config/charmander.yml); set it, or use dry_run: true")

        self.limits = SafetyLimits(
            joint_limits=tuple(map(tuple, self.joint_limits)), velocity_limits=tuple(self.velocity_limits),
            dt=1.0 / self.control_hz, joint_margin=options.joint_margin, velocity_scale=options.velocity_scale,
            max_joint_step=options.max_joint_step, workspace_min=tuple(options.workspace_min),
            workspace_max=tuple(options.workspace_max), joint_names=self.joint_names)
        self.guard = SafetyGuard(self.limits, fk=self.fk)

        self._robot: Any = None  # deoxys FrankaInterface (real mode, after connect())
        self._controller_cfg: Any = None
        self._last_cmd_q: np.ndarray | None = None
        self._last_gripper = self.gripper_open
        self._seq = 0
        self._closed = False
        self._log_file: Any = None
        if self.dry_run:
            q0 = self.home_q if options.dry_run_start_q is None else options.dry_run_start_q
            self._sim_q = self.arm_model._q(q0, "dry_run_start_q")
            safe = self.limits.safe_range
            if np.any(self._sim_q < safe[:, 0]) or np.any(self._sim_q > safe[:, 1]):
                raise ValueError(f"dry_run_start_q: {self._sim_q.round(4).tolist()} is outside the joint limits minus "
                                 f"joint_margin {options.joint_margin} rad; start from a configuration inside them")
            self._sim_gripper_width = 0.08
            if options.dry_run_log:
                self._log_file = open(options.dry_run_log, "a", encoding="utf-8")
                self._write({"event": "open", "t": 0.0, "dry_run": True, "control_hz": self.control_hz,
                             "q": self._sim_q.tolist()})

    # ------------------------------------------------------------------ config
    def _controller_facts(self) -> tuple[float, str]:
        """(time_fraction, interpolator type) of the JOINT_IMPEDANCE controller config; checks it."""
        path = self.options.controller_config
        if path is None:
            return DEFAULT_TIME_FRACTION, "LINEAR_JOINT_POSITION"
        cfg = _read_yaml(path, "controller_config")
        self._check_controller_cfg(cfg, f"controller_config {path!r}")
        tic = _get(cfg, "traj_interpolator_cfg") or {}
        return float(_get(tic, "time_fraction", DEFAULT_TIME_FRACTION)), \
            str(_get(tic, "traj_interpolator_type", "LINEAR_JOINT_POSITION"))

    @staticmethod
    def _check_controller_cfg(cfg: Any, where: str) -> None:
        if _get(cfg, "controller_type") != CONTROLLER_TYPE:
            raise ValueError(f"{where}: controller_type is {_get(cfg, 'controller_type')!r}; this backend sends "
                             f"{CONTROLLER_TYPE} actions, give a JOINT_IMPEDANCE controller config")
        if _get(cfg, "is_delta", None) is not False:
            raise ValueError(f"{where}: is_delta is {_get(cfg, 'is_delta', None)!r}; the actions are absolute joint "
                             "targets, set is_delta: false")
        tic = _get(cfg, "traj_interpolator_cfg") or {}
        tf = _get(tic, "time_fraction", DEFAULT_TIME_FRACTION)
        kind = _get(tic, "traj_interpolator_type", "LINEAR_JOINT_POSITION")
        if not isinstance(tf, (int, float)) or not 0 < float(tf) <= 1:
            raise ValueError(f"{where}: traj_interpolator_cfg.time_fraction is {tf!r}; expected a number in (0, 1]")
        if kind not in _INTERPOLATOR_PEAK:
            raise ValueError(f"{where}: traj_interpolator_type {kind!r}; this backend supports "
                             f"{sorted(_INTERPOLATOR_PEAK)} (it bounds their peak joint speed)")

    def _interface_path(self, name: str, resolve: bool) -> str:
        """The interface YAML's path; a bare file name is looked up in ``deoxys.config_root`` (only
        when ``resolve``, i.e. with Deoxys imported; otherwise "" = not checkable yet)."""
        p = Path(os.path.expanduser(name))
        if p.is_file():
            return str(p)
        if p.parent == Path("."):
            if not resolve:
                return ""
            import deoxys

            q = Path(deoxys.config_root) / name
            if q.is_file():
                return str(q)
        raise ValueError(f"deoxys_config: {name!r} is not a file; give the path of the Deoxys interface YAML (e.g. "
                         "deoxys_control/deoxys/config/charmander.yml)")

    def _check_policy_rate(self, path: str) -> None:
        if not path:
            return
        try:
            cfg = _read_yaml(path, "deoxys_config")
        except ValueError as e:
            log.warning("%s; cannot check CONTROL.POLICY_RATE against control_hz", e)
            return
        rate = _get(_get(cfg, "CONTROL") or {}, "POLICY_RATE", DEFAULT_POLICY_RATE)
        if not math.isclose(float(rate), self.control_hz):
            raise ValueError(f"control_hz: {self.control_hz} Hz but {path} sets CONTROL.POLICY_RATE {rate}: Deoxys' "
                             "NUC interpolates each command over time_fraction / POLICY_RATE s, so the rates must "
                             "agree; "
                             f"set control_hz: {rate} (or change POLICY_RATE on the NUC and in this file)")

    # ------------------------------------------------------------------ connection
    def connect(self) -> None:
        """Dry run: nothing. Real: import Deoxys, load the controller config, build ``FrankaInterface``."""
        if self._closed:
            raise RuntimeError(f"{PLUGIN}: closed; build a new embodiment to reconnect")
        if self.dry_run or self._robot is not None:
            return
        try:
            from deoxys.franka_interface import FrankaInterface
            from deoxys.utils.config_utils import get_default_controller_config, verify_controller_config
            from deoxys.utils.yaml_config import YamlConfig
        except ImportError as e:
            where = ""
            try:
                import deoxys  # noqa: F401

                where = (f" (an unrelated 'deoxys' is importable from {getattr(deoxys, '__file__', '?')}; "
                         "pip uninstall it)")
            except ImportError:
                pass
            raise PluginUnavailableError(
                f"embodiment plugin {PLUGIN!r} cannot import deoxys.franka_interface.FrankaInterface "
                f"and deoxys.utils.config_utils ({type(e).__name__}: {e}){where}; {INSTALL}"
            ) from None
        path = self._interface_path(self.options.deoxys_config, resolve=True)
        self._check_policy_rate(path)
        if self.options.controller_config is None:
            cfg = get_default_controller_config(CONTROLLER_TYPE)
        else:
            cfg = verify_controller_config(YamlConfig(self.options.controller_config).as_easydict(), use_default=True)
        self._check_controller_cfg(cfg, "controller_config" if self.options.controller_config else
                                   "Deoxys' default JOINT_IMPEDANCE config")
        self._controller_cfg = cfg
        self._robot = FrankaInterface(general_cfg_file=path, control_freq=self.control_hz, use_visualizer=False)
        log.info("%s: FrankaInterface(%s) at %s Hz", PLUGIN, path, self.control_hz)

    def close(self) -> None:
        """Close the Deoxys interface (real) / the dry-run log. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._robot is not None:
            self._robot.close()
        if self._log_file is not None:
            self._write({"event": "close", "t": self._now()})
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> "DeoxysFranka":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def bind(self, world: Any) -> None:
        """A real robot binds to no simulated world: ``world`` is None or a real-world object (kept as
        ``self.world``, nothing else is read from it). Binding a robosuite world (one with ``env.sim``)
        is refused: simulate with the ``franka`` embodiment instead."""
        env = getattr(world, "env", None)
        if env is not None and hasattr(env, "sim"):
            raise ValueError(f"world: {type(world).__name__} is a simulated robosuite world but {PLUGIN} drives the "
                             "real robot; in simulation set embodiment.plugin=franka (same Panda kinematics)")
        self.world = world

    # ------------------------------------------------------------------ kinematics (protocol)
    def fk(self, q: np.ndarray) -> np.ndarray:
        """4x4 T_world_ee (grip site) for joint positions ``q`` (7,), radians."""
        return self.T_world_base @ self.arm_model.fk(q)

    def jacobian(self, q: np.ndarray) -> np.ndarray:
        """6 x 7 geometric Jacobian of the grip site, rows (v; omega), world frame, at its origin."""
        J = self.arm_model.jacobian(q)
        R = self.T_world_base[:3, :3]
        return np.vstack([R @ J[:3], R @ J[3:]])

    def ik(self, T_world_ee: np.ndarray, q_init: np.ndarray | None = None, *,
           position_only: bool = False) -> IKResult:
        """Joint positions (within joint_limits) putting the grip site at ``T_world_ee`` (world frame).

        Starts from ``q_init`` (default: the current joints: measured, or simulated in a dry run).
        """
        from .robosuite_kinematics import check_pose

        T = self._T_base_world @ check_pose(T_world_ee, "T_world_ee")
        if q_init is None:
            q_init = self.current_q()
        return self.arm_model.ik(T, q_init, position_only=position_only)

    def grasp_to_ee(self, T_world_grasp: np.ndarray, width: float = 0.0) -> np.ndarray:
        """End-effector pose that puts the grasp frame at ``T_world_grasp`` (see ArmModel.grasp_to_ee)."""
        return self.arm_model.grasp_to_ee(T_world_grasp, width)

    def ee_to_grasp(self, T_world_ee: np.ndarray) -> np.ndarray:
        return self.arm_model.ee_to_grasp(T_world_ee)

    # ------------------------------------------------------------------ state
    def _now(self) -> float:
        return float(self._clock() - self._t0)

    def current_q(self) -> np.ndarray:
        """(7,) measured joint positions, radians (dry run: the simulated ones).

        Real: waits up to ``state_timeout`` s for Deoxys' state buffer (``state_buffer_size > 0``
        and a non-zero ``last_q``), then returns ``last_q``; TimeoutError otherwise.
        """
        if self.dry_run:
            return self._sim_q.copy()
        self.connect()
        deadline = self._clock() + float(self.options.state_timeout)
        while True:
            r = self._robot
            if r.state_buffer_size > 0:
                q = r.last_q
                if q is not None and np.asarray(q).shape == (7,) and np.any(np.asarray(q) != 0):
                    return np.array(q, dtype=np.float64)
            if self._clock() >= deadline:
                raise TimeoutError(f"{PLUGIN}: no robot state within state_timeout "
                                   f"{self.options.state_timeout} s "
                                   "(state_buffer_size 0 or all-zero last_q); is franka-interface running on the NUC "
                                   "and does deoxys_config name its IP/ports? Or raise state_timeout")
            self._sleep(0.01)

    def gripper_width(self) -> float | None:
        """Gripper opening, metres (Deoxys ``last_gripper_q``; dry run: simulated); None if unknown."""
        if self.dry_run:
            return self._sim_gripper_width
        self.connect()
        w = self._robot.last_gripper_q
        return None if w is None else float(np.asarray(w).reshape(-1)[0])

    def action_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) of the 8-vector action: the joint limits (rad) and the gripper [-1, 1]."""
        return (np.append(self.joint_limits[:, 0], -1.0), np.append(self.joint_limits[:, 1], 1.0))

    # ------------------------------------------------------------------ control
    def joint_action(self, q_target: np.ndarray, gripper: float = 0.0) -> np.ndarray:
        """The 8-vector Deoxys JOINT_IMPEDANCE action ``[q_target (7, rad), gripper]``.

        ``gripper`` in [-1 open, +1 closed]; 0 (the default) repeats the last gripper command (Deoxys
        would grasp on 0, see the module docstring). Not clipped and not sent: :meth:`send` checks it.
        """
        q = self.arm_model._q(q_target, "q_target")
        from .robosuite_kinematics import check_gripper

        g = check_gripper(gripper)
        if g == 0.0:
            g = self._last_gripper
        return np.append(q, g)

    def ee_action(self, T_world_ee: np.ndarray, gripper: float = 0.0, q_init: np.ndarray | None = None, *,
                  position_only: bool = False, strict: bool = False) -> np.ndarray:
        """ik (from ``q_init``, default the current joints) then :meth:`joint_action`; ``strict`` raises
        ValueError when IK fails. The IKResult is kept in ``last_ik``."""
        res = self.ik(T_world_ee, q_init, position_only=position_only)
        self.last_ik = res
        if strict and not res.success:
            raise ValueError(f"T_world_ee: unreachable (IK error {1000 * res.position_error:.1f} mm, "
                             f"{res.rotation_error:.3f} rad)")
        return self.joint_action(res.q, gripper)

    def _q_prev(self) -> np.ndarray:
        return self._last_cmd_q.copy() if self._last_cmd_q is not None else self.current_q()

    def _write(self, rec: dict[str, Any]) -> None:
        if self._log_file is not None:
            self._log_file.write(json.dumps(rec) + "\n")
            self._log_file.flush()

    def _reject(self, action: Any, err: SafetyError) -> None:
        try:
            a = None if action is None else [x if math.isfinite(x) else str(x)  # strict JSON: "nan", "inf"
                                             for x in np.asarray(action, dtype=np.float64).reshape(-1).tolist()]
        except (TypeError, ValueError):
            a = repr(action)
        rec = {"event": "rejected", "t": self._now(), "error": str(err), "check": err.check, "action": a}
        if self.dry_run:
            self.command_log.append(rec)
            self._write(rec)
        log.warning("%s: command rejected: %s", PLUGIN, err)

    def send(self, action: np.ndarray) -> None:
        """Check ``action`` (8,) = [7 joint targets, gripper] and send it (dry run: log it).

        Safety-checked against the previous commanded target (:class:`~.safety.SafetyError`, nothing
        sent, on any violation), then rate-limited to ``control_hz``, then
        ``FrankaInterface.control("JOINT_IMPEDANCE", action, controller_cfg=...)``.
        """
        if self._closed:
            raise RuntimeError(f"{PLUGIN}: closed; build a new embodiment to send commands")
        self.connect()
        try:
            a = self.guard.check_action(action, self._q_prev())
        except SafetyError as e:
            self._reject(action, e)
            raise
        self._dispatch(a)

    def _dispatch(self, a: np.ndarray) -> None:
        t = self.rate.wait()
        if self.dry_run:
            rec = {"event": "command", "seq": self._seq, "t": float(t - self._t0), "controller_type": CONTROLLER_TYPE,
                   "action": a.tolist()}
            self.command_log.append(rec)
            self._write(rec)
            self._sim_q = a[:7].copy()
            g = float(a[7])
            self._sim_gripper_width = 0.08 * abs(g) if g < 0 else 0.0
        else:
            self._robot.control(controller_type=CONTROLLER_TYPE, action=a.copy(), controller_cfg=self._controller_cfg)
        self._seq += 1
        self._last_cmd_q = a[:7].copy()
        self._last_gripper = float(a[7])

    def plan(self, q_traj: np.ndarray, gripper: Any = None) -> np.ndarray:
        """The N x 8 actions :meth:`execute` would send for ``q_traj`` (T x 7) from the current target,
        every one checked (SafetyError names the first bad one); nothing is sent.

        Each waypoint is reached through equal steps within the guard's per-joint step (the smaller
        of ``max_joint_step`` and ``velocity_scale * velocity_limit / control_hz``); the steps
        before a waypoint keep the previous gripper value, the waypoint itself carries its own.
        ``gripper``: None (keep), a number, or (T,) values in [-1, 1] (0 = keep, as in joint_action).
        """
        Q = np.array(q_traj, dtype=np.float64)
        if Q.ndim != 2 or Q.shape[1] != self.dof or Q.shape[0] < 1:
            raise SafetyError(f"q_traj: expected a T x {self.dof} array of joint targets (radians), got shape "
                              f"{Q.shape}; nothing sent", check="shape", value=Q.shape)
        T = Q.shape[0]
        if gripper is None:
            G = np.zeros(T)
        else:
            G = np.array(gripper, dtype=np.float64)
            G = np.full(T, float(G)) if G.ndim == 0 else G
            if G.shape != (T,):
                raise SafetyError(f"gripper: expected None, a number or {T} values (one per waypoint), got shape "
                                  f"{G.shape}; nothing sent", check="shape", value=G.shape)
        g_prev = self._last_gripper
        prev = self._q_prev()
        out: list[np.ndarray] = []
        for k in range(T):
            try:
                q_k = self.guard._q(Q[k], f"q_traj[{k}]")
                g_k = float(G[k])
                if math.isfinite(g_k) and g_k == 0.0:
                    g_k = g_prev
                steps = self.guard.interpolate(prev, q_k)
                for i, q in enumerate(steps):
                    g = g_k if i == len(steps) - 1 else g_prev
                    self.guard.check(q, g, prev)
                    out.append(np.append(q, g))
                    prev = q
            except SafetyError as e:
                raise SafetyError(f"q_traj[{k}]: {e}; nothing of the trajectory was sent", check=e.check, joint=e.joint,
                                  value=e.value, limit=e.limit) from None
            g_prev = g_k
        return np.array(out)

    def execute(self, q_traj: np.ndarray, gripper: Any = None) -> np.ndarray:
        """Send the joint trajectory ``q_traj`` (T x 7, radians) at ``control_hz``; returns the N x 8
        actions sent. The whole interpolated trajectory (:meth:`plan`) is checked before the first
        command leaves; each command is checked again by :meth:`send`."""
        try:
            actions = self.plan(q_traj, gripper)
        except SafetyError as e:
            self._reject(None, e)
            raise
        for a in actions:
            self.send(a)
        return actions


# --------------------------------------------------------------------------- registration

def _franka_deoxys(options: DeoxysFrankaOptions | None = None, ctx: Any = None) -> DeoxysFranka:
    configure_headless_gl()  # the Panda model is compiled with MuJoCo (no rendering)
    return DeoxysFranka(options)


@hookimpl
def d2f_register(register):
    register(Manifest.of(DeoxysFranka, factory=_franka_deoxys))
