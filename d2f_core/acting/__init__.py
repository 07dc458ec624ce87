"""The acting layer: one place for the three ways the paper turns a 3D object flow into actions.

* :class:`~.env.FlowEnv` (Gymnasium) wraps a world + embodiment (+ reward + estimator);
  :func:`make_env` builds one from a run config or a shipped recipe name.
* :func:`~.rollout.rollout` runs one episode of an :class:`~d2f_core.protocols.Agent` and returns an
  :class:`~.episode.EpisodeReport`; the pipeline's ``execute`` stage is that call.
* :mod:`.evaluate` runs episodes over seeds (``d2f eval``); :mod:`.train` owns learning (``d2f train``).

Gymnasium is imported only when an env is built: ``import d2f_core`` stays light.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from .episode import EpisodeReport
from .rollout import rollout

__all__ = ["EpisodeReport", "make_env", "rollout", "FlowEnv", "override_list"]


def override_list(overrides: Mapping[str, Any] | list[str] | tuple[str, ...] | None) -> list[str]:
    """``{"reward.plugin": "flow", "solver.options.w_flow": 5}`` (or ``["a.b=c", ...]``) as ``--set`` strings."""
    if overrides is None:
        return []
    if isinstance(overrides, (list, tuple)):
        return [str(o) for o in overrides]
    if not isinstance(overrides, Mapping):
        raise TypeError(f"overrides: expected a mapping {{'reward.plugin': 'flow'}} or a list of 'KEY=VALUE', "
                        f"got {type(overrides).__name__}")
    return [f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in overrides.items()]


def make_env(config: Any, seed: int = 0, overrides: Mapping[str, Any] | list[str] | None = None, *,
             workdir: str | Path | None = None, registry: Any = None, render_mode: str | None = None,
             observe_particles: bool = False) -> Any:
    """A :class:`~.env.FlowEnv` for ``config`` (a YAML path, a shipped recipe name such as
    ``"open_door"``, a :class:`~d2f_core.config.RunConfig` or a dict).

    The world, embodiment, reward and estimator are built from the config exactly as ``d2f run``
    builds them. When a reward or an estimator is configured, the perception stages (observe ->
    video -> depth -> segment -> track -> flow) run first, for ``seed``, cached in ``workdir``
    (default ``runs/<name>-seed<seed>``), so the env follows the config's own 3D object flow. The
    solver, if any, is not built: pair the env with any agent.
    """
    from ..config import RunConfig, config_from_dict, load_config
    from ..pipeline import STAGES, Run
    from ..registry import get_registry
    from .env import FlowEnv

    if isinstance(config, RunConfig):
        cfg = config_from_dict(_apply(config.model_dump(mode="json"), overrides))
    elif isinstance(config, Mapping):
        cfg = config_from_dict(_apply(dict(config), overrides))
    else:
        cfg = load_config(config, override_list(overrides))
    cfg = cfg.model_copy(update={"solver": None})  # an env, not an agent: any solver in the recipe is not built
    if cfg.world is None:
        raise ValueError("world: make_env needs a world in the config (`world: {plugin: robosuite, options: "
                         "{task: open_door}}`); `d2f plugins --kind world` lists them")
    out = Path(workdir) if workdir is not None else Path("runs") / f"{cfg.name}-seed{seed}"
    run = Run(config=cfg, out_dir=out, registry=registry or get_registry(), seed=int(seed))
    flow = None
    if cfg.reward is not None or cfg.estimator is not None:
        perception = [s for s in STAGES if s.name in ("observe", "video", "depth", "segment", "track", "flow")]
        run.execute(perception)
        flow = run.artifacts.get("flow")
        if flow is None:
            raise ValueError(f"flow: the reward/estimator of {cfg.name!r} follow a 3D object flow, but the config's "
                             "perception made none (configure video, depth, segmenter and tracker); "
                             f"see {out / 'result.json'}")
    else:
        out.mkdir(parents=True, exist_ok=True)
        run.check_config()
    env = FlowEnv(run.component("world"), reward=run.component("reward"), estimator=run.component("estimator"),
                  flow=flow, horizon=cfg.execute.max_steps, base_seed=int(seed),
                  stop_on_success=cfg.execute.stop_on_success, render_mode=render_mode,
                  observe_particles=observe_particles)
    env.run = run  # the run that built it: its config, folder and other components (run.component(kind))
    return env


def _apply(data: dict[str, Any], overrides: Any) -> dict[str, Any]:
    from ..config import apply_overrides
    return apply_overrides(data, override_list(overrides))


def __getattr__(name: str) -> Any:
    if name == "FlowEnv":
        from .env import FlowEnv
        return FlowEnv
    raise AttributeError(name)
