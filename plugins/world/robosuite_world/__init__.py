"""``robosuite`` world: robosuite / MuJoCo tasks for the robosuite embodiments (issue 4).

Tasks (option ``task``): ``open_door`` (robosuite's latched Door; success: hinge > 0.3 rad),
``bread_in_bowl`` (a bread loaf and a bowl on a table; success: the bread rests in the bowl),
``open_oven`` (a countertop oven with a bottom-hinged door; success: door opened >= 0.5 rad) and
``cover_bowl`` (a cloth simulated with MuJoCo flex and a bowl; success: the cloth covers the bowl).

The embodiment comes from the run (``embodiment: {plugin: franka | spot | gr1}``); built alone
(``d2f check robosuite``) the world uses ``franka``. Camera: RGB, metric depth and per-object
segmentation from a fixed camera chosen per task (or any static robosuite camera), with
:class:`d2f_core.Camera` intrinsics/extrinsics in the OpenCV convention.

Capabilities: ``segmentation`` (``object_mask(name)``), ``oracle`` (``oracle_rollout(num_frames)``:
the task done right by a scripted motion of the object, robot hidden — used by the ``sim-oracle``,
``sim-depth``, ``sim-mask`` and ``sim-hand`` stand-ins), ``deterministic``, ``object_pose`` (the
privileged state holds ``object_pose``, T_world_object of the task's moving rigid part; not for
cover_bowl's cloth: used by the ``sim-particles`` estimator) and ``shaped_reward``
(``task_reward()``, the task's shaped reward, robosuite's own for open_door: used by the
``object-state`` reward). The world also offers ``calibration_probe()`` for the camera
conformance checks.

Only pydantic and numpy are imported here (:mod:`.world`, whose :class:`~.world.RobosuiteWorld` declares
the plugin, imports mujoco when a world is built); robosuite and mujoco are imported by the factory.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from d2f_core import Manifest, hookimpl

from .options import SIM_INSTALL, SIM_REQUIRES, RobosuiteWorldOptions
from .world import RobosuiteWorld

__all__ = ["RobosuiteWorld", "RobosuiteWorldOptions", "TASK_NAMES", "StandInOptions", "make_world", "oracle_world",
           "quiet_robosuite", "SIM_REQUIRES", "SIM_INSTALL"]

TASK_NAMES = ("open_door", "bread_in_bowl", "open_oven", "cover_bowl")


_NOISE = ("private macro file", "setup_macros.py", "robosuite_models", "mink-based whole-body IK")


def quiet_robosuite() -> None:
    """Drop robosuite's import-time notices (missing private macros, optional robot packages) and its
    INFO lines from the console; its other warnings and errors still show. Call before importing it."""
    import logging

    log = logging.getLogger("robosuite_logs")
    if not any(getattr(f, "_d2f", False) for f in log.filters):
        def keep(record: logging.LogRecord) -> bool:
            msg = str(record.getMessage())
            return record.levelno >= logging.WARNING and not any(n in msg for n in _NOISE)

        keep._d2f = True  # type: ignore[attr-defined]
        log.addFilter(keep)


def default_embodiment() -> Any:
    """The ``franka`` embodiment plugin, or a built-in Panda stand-in when it is not installed."""
    from d2f_core.registry import PluginNotFoundError, get_registry

    try:
        return get_registry().create("embodiment", "franka", {})
    except PluginNotFoundError:
        from .world import BuiltinRobot

        return BuiltinRobot("Panda")


def make_world(options: RobosuiteWorldOptions | None = None, ctx: Any = None) -> Any:
    """Factory: the world for ``options`` with the run's embodiment (default: franka)."""
    options = options or RobosuiteWorldOptions()
    from d2f_core.gl import configure_headless_gl

    configure_headless_gl()
    quiet_robosuite()
    embodiment = ctx.component("embodiment") if ctx is not None else None
    if embodiment is None:
        embodiment = default_embodiment()
    return RobosuiteWorld(options, embodiment)


class StandInOptions(BaseModel):
    """Options every simulator stand-in (sim-oracle, sim-depth, sim-mask, sim-hand) shares."""

    model_config = ConfigDict(extra="forbid")

    task: Literal["open_door", "bread_in_bowl", "open_oven", "cover_bowl"] = Field(
        default="open_door", description="task of the robosuite world built when the run has no world "
                                         "(e.g. `d2f check`); ignored when the run has one")
    width: int = Field(default=640, ge=32, le=2048, description="image width of that fallback world, pixels")
    height: int = Field(default=480, ge=32, le=2048, description="image height of that fallback world, pixels")


def oracle_world(ctx: Any, options: StandInOptions, plugin: str) -> Any:
    """The run's world (``ctx.component("world")``), or a robosuite world of ``options.task`` when the
    run has none. Raises ValueError when the world cannot script an oracle."""
    world = ctx.component("world") if ctx is not None else None
    if world is None:
        world = make_world(RobosuiteWorldOptions(task=options.task, width=options.width, height=options.height))
    if not callable(getattr(world, "oracle_rollout", None)):
        raise ValueError(f"world.plugin: {plugin} reads the simulator's oracle rollout, but the configured world "
                         f"{getattr(world, 'name', type(world).__name__)!r} has no capability 'oracle'; use "
                         "`world: {plugin: robosuite}` or another plugin for this stage")
    return world


@hookimpl
def d2f_register(register):
    register(Manifest.of(RobosuiteWorld, factory=make_world))
