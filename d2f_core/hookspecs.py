"""Every pluggy hook of dream2flow. The docstring of each hook is its contract.

Plugins implement hooks with :data:`hookimpl` in a module named by an entry point of the group
``dream2flow``. Hooks only *register* components and *observe* events: the core never calls a
component through ``pm.hook``.
"""

from __future__ import annotations

import pluggy

PROJECT = "dream2flow"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def d2f_register(register):
    """Register components.

    ``register`` is a callable taking one :class:`d2f_core.registry.Manifest`; call it once per
    component. Must be cheap: import heavy libraries (torch, mujoco, ...) inside the manifest's
    factory, never here. A module may register several components of different kinds.
    """


@hookspec
def d2f_stage_started(run, stage):
    """A pipeline stage starts.

    ``run`` is the :class:`d2f_core.pipeline.Run` (its ``out_dir``, ``config``, ``seed``);
    ``stage`` the stage name (e.g. ``"track"``). Observers must not raise.
    """


@hookspec
def d2f_stage_finished(run, stage, artifact, seconds, cached):
    """A pipeline stage finished.

    ``artifact`` is what the stage produced (e.g. an ObjectFlow), ``seconds`` its wall time,
    ``cached`` True when it was loaded from an earlier run instead of recomputed.
    """


@hookspec
def d2f_stage_progress(run, stage, done, total, message):
    """Optional progress inside a long stage (``done`` of ``total`` units; ``total`` may be None)."""


@hookspec
def d2f_episode_finished(run, result):
    """An episode in a world ended; ``result`` is the dict written to ``result.json``."""
