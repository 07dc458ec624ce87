"""Run configuration: YAML -> pydantic, ``--set a.b.c=value`` overrides, per-plugin options.

The run config names one plugin per component kind; each plugin validates its own ``options``
with its own pydantic model (see :meth:`d2f_core.registry.Registry.validate_options`), so a
typo is an error naming the config path, the plugin and the valid keys.
"""

from __future__ import annotations

import difflib
import math
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from .protocols import KIND_SPECS, KINDS

DEFAULT_PROMPT_TEMPLATE = "{task} by one hand. The camera holds a still pose, not zooming in or out."
"""The paper's prompt template (notes §6); ``{task}`` is the instruction."""


class ConfigError(ValueError):
    """A config problem; the message names the file, the path inside it and the fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ComponentConfig(_Strict):
    """``{plugin: NAME, options: {...}}`` for one component."""

    plugin: str = Field(description="registered plugin name, see `d2f plugins`")
    options: dict[str, Any] = Field(default_factory=dict, description="validated by the plugin")


class TaskConfig(_Strict):
    instruction: str = Field(description="the task in words, e.g. 'put the bread in the bowl'")
    object: str = Field(description="what moves, e.g. 'bread'")
    rigid: bool = Field(True, description="whether the object is rigid (quality report checks it)")


class FlowConfig(_Strict):
    """Options of the core's flow extraction (paper §4.2, §4.5)."""

    num_frames: int = Field(49, ge=2, description="frames asked of the video model")
    prompt_template: str = Field(DEFAULT_PROMPT_TEMPLATE, description="'{task}' is replaced")
    num_points: int = Field(1024, ge=1, description="points sampled in the object mask (FPS)")
    erode_px: int = Field(2, ge=0, description="mask erosion before sampling, pixels")
    align: Literal["scale_shift", "scale"] = Field("scale_shift", description="depth alignment model")
    movable_threshold_px: float = Field(1.0, ge=0, description="mean motion (px/frame) of movable tracks")
    movable_filter: bool = Field(True, description="keep only the moving part of the object (paper §4.5)")
    movable_min_static: float = Field(0.1, ge=0, le=1, description="fraction of static tracks from which "
                                      "the object counts as having a movable part (re-prompt or filter)")
    video_framing: Literal["stretch", "crop", "pad"] = Field(
        "stretch", description="how the camera image was fitted into a video of another size, when the "
        "video plugin does not say (stretch = resized, what diffusers' Wan pipeline does)")
    background_points: int = Field(256, ge=0, description="background tracks for the camera-motion check")
    quality: "QualityConfig" = Field(default_factory=lambda: QualityConfig())
    pictures: bool = Field(True, description="write the flow overlay video and the 3D plot")
    rerun: bool = Field(False, description="also write a Rerun recording flow.rrd (extra viz)")


class QualityConfig(_Strict):
    """Thresholds of the flow quality report (each exceeded one is a warning, not an error)."""

    camera_motion_px: float = Field(2.0, gt=0, description="background drift that means a moving camera (px)")
    min_final_visible: float = Field(0.5, ge=0, le=1, description="final visible fraction below which the "
                                     "object left the view")
    max_lost_fraction: float = Field(0.3, ge=0, le=1, description="fraction of points lost for good flagged")
    rigidity_m: float = Field(0.02, gt=0, description="rigid-fit residual flagged for rigid objects (m)")


FlowConfig.model_rebuild()


class GraspConfig(_Strict):
    top_k: int = Field(40, ge=1, description="candidates asked of the grasper (paper: 40)")
    thumb_radius_m: float = Field(0.02, gt=0, description="grasp-to-thumb distance for hand choice (m)")


class ExecuteConfig(_Strict):
    max_steps: int | None = Field(None, ge=1, description="episode step cap (default: world horizon)")
    record_video: bool = Field(True, description="write the rollout video")
    stop_on_success: bool = Field(True, description="end the episode as soon as the world's success check "
                                                    "passes (Gymnasium's terminated)")


SOLVER_DEFAULT_STEPS = 5000
"""Environment steps a training solver gets when ``train.steps`` is not set (the paper's "5000 training
iterations" for Open Door; the paper does not define the unit)."""

class TrainConfig(_Strict):
    """Options of ``d2f train`` (the run config's ``train:`` section; ``--set train.steps=20``)."""

    steps: int | None = Field(None, ge=1, description="how long to train: rounds (collect, then fit) for a "
                              "dynamics model (default: transitions / chunk), environment steps for a solver "
                              f"(default {SOLVER_DEFAULT_STEPS})")
    transitions: int = Field(500, ge=1, description="dynamics: transitions collected in all (paper, Push-T: 500)")
    chunk: int = Field(50, ge=1, description="dynamics: transitions collected per round, from one world reset")
    checkpoint_every: int | None = Field(None, ge=1, description="steps between checkpoints (default: every "
                                         "round for a dynamics model, steps / 10 for a solver); the last step "
                                         "is always checkpointed")
    keep: int = Field(2, ge=1, description="checkpoints kept per learner (older ones are deleted)")
    log_every: int | None = Field(None, ge=1, description="solver: environment steps between log rows "
                                  "(default steps / 100); a dynamics model logs every round")
    seed: int | None = Field(None, description="seed of data collection and learning (default: --seed, then "
                             "the config's seed)")
    tensorboard: bool = Field(True, description="also write TensorBoard events when tensorboard is installed")

    def dynamics_steps(self) -> int:
        return self.steps if self.steps is not None else math.ceil(self.transitions / self.chunk)

    def solver_steps(self) -> int:
        return self.steps if self.steps is not None else SOLVER_DEFAULT_STEPS


class _RunConfigBase(_Strict):
    """A whole run. Components left out are stages that are skipped. One ``KIND: {plugin, options}``
    field per component kind of :data:`d2f_core.protocols.KIND_SPECS` (generated from that table)."""

    name: str = Field("run", description="run name (folder under runs/ by default)")
    seed: int = Field(0, description="seed for the world, the video model and the solver")
    task: TaskConfig | None = None
    scene: str | None = Field(None, description="scene folder (official layout) instead of a world")
    scene_camera: str | None = Field(None, description="camera name in the scene's calibration file")
    flow: FlowConfig = Field(default_factory=FlowConfig)
    grasp: GraspConfig = Field(default_factory=GraspConfig)
    execute: ExecuteConfig = Field(default_factory=ExecuteConfig)
    train: TrainConfig = Field(default_factory=TrainConfig, description="options of `d2f train` (steps, "
                               "transitions, chunk, checkpoint_every, keep, log_every, seed, tensorboard)")

    def component(self, kind: str) -> ComponentConfig | None:
        if kind not in KINDS:
            raise KeyError(kind)
        return getattr(self, kind)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json", exclude_none=True), sort_keys=False)


RunConfig = create_model(  # type: ignore[call-overload]
    "RunConfig", __base__=_RunConfigBase, __module__=__name__,
    **{k.name: (ComponentConfig | None, Field(None, description=f"{k.summary}: {{plugin: NAME, options: {{...}}}}"))
       for k in KIND_SPECS})
RunConfig.__doc__ = _RunConfigBase.__doc__


# ----------------------------------------------------------------------------- overrides


def parse_value(text: str) -> Any:
    """YAML-typed value of an override (``5`` -> int, ``true`` -> bool, ``[1, 2]`` -> list)."""
    try:
        return yaml.safe_load(text) if text != "" else ""
    except yaml.YAMLError:
        return text


def apply_overrides(data: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` strings to a nested dict (in place, and returned).

    ``KIND.plugin=NAME`` overrides are applied first: switching a component's plugin drops the
    options the *file* gave the old plugin (they would not validate), never options given on the
    same command line, whatever their order.
    """
    overrides = list(overrides or ())
    is_plugin = [len(o.partition("=")[0].strip().split(".")) == 2 and
                 o.partition("=")[0].strip().endswith(".plugin") for o in overrides]
    overrides = [o for o, p in zip(overrides, is_plugin) if p] + [o for o, p in zip(overrides, is_plugin) if not p]
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set solver.options.w_flow=5")
        key, _, raw = item.partition("=")
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise ConfigError(f"--set {item!r}: empty key")
        node = data
        for i, part in enumerate(parts[:-1]):
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            elif not isinstance(nxt, dict):
                raise ConfigError(f"--set {item!r}: {'.'.join(parts[:i + 1])} is a value, not a section")
            node = nxt
        value = parse_value(raw)
        # Switching plugins drops the old plugin's options (they would not validate).
        if parts[-1] == "plugin" and len(parts) == 2 and node.get("plugin") not in (None, value):
            node.pop("options", None)
        node[parts[-1]] = value
    return data


def _format_validation(e: ValidationError, source: str) -> str:
    lines = []
    for err in e.errors():
        loc = [str(p) for p in err["loc"]]
        path = ".".join(loc)
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            model: Any = RunConfig
            for part in loc[:-1]:
                field = model.model_fields.get(part) if hasattr(model, "model_fields") else None
                ann = getattr(field, "annotation", None)
                model = next((a for a in getattr(ann, "__args__", (ann,)) if hasattr(a, "model_fields")), None)
                if model is None:
                    break
            valid = list(model.model_fields) if model is not None else []
            close = difflib.get_close_matches(loc[-1], valid, n=1)
            msg = "unknown key" + (f"; did you mean {close[0]!r}?" if close else "") + (
                f" Valid keys: {', '.join(valid)}" if valid else "")
        elif err["type"] != "missing" and "input" in err:
            msg += f" (got {err['input']!r})"
        lines.append(f"{source}: {path}: {msg}")
    return "\n".join(lines)


def config_from_dict(data: Mapping[str, Any], *, source: str = "config") -> RunConfig:
    try:
        return RunConfig.model_validate(dict(data))
    except ValidationError as e:
        raise ConfigError(_format_validation(e, source)) from None


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (), *,
                data: Mapping[str, Any] | None = None) -> RunConfig:
    """Read a YAML run config (or ``data``), apply ``--set`` overrides, validate."""
    source = str(path) if path is not None else "config"
    if data is None:
        if path is None:
            raw: Any = {}
        else:
            p = Path(path)
            if not p.is_file():
                p = resolve_recipe(p)
            try:
                raw = yaml.safe_load(p.read_text()) or {}
            except yaml.YAMLError as e:
                raise ConfigError(f"{p}: not valid YAML: {e}") from None
    else:
        raw = data
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping (task:, world:, video:, ...)")
    raw = apply_overrides(_deepcopy(raw), list(overrides))
    return config_from_dict(raw, source=source)


def recipes() -> dict[str, Path]:
    """The configs shipped with the package (``configs/*.yaml``, package ``d2f_configs``): name -> path."""
    from importlib.resources import files

    try:
        root = Path(str(files("d2f_configs")))
    except ModuleNotFoundError:
        return {}
    return {f.stem: f for f in sorted(root.glob("*.yaml"))}


def resolve_recipe(p: Path) -> Path:
    """A missing config path that names a shipped recipe (``open_oven``, ``configs/open_oven.yaml``)
    resolves to it, so recipes run from any folder; else a ConfigError listing them."""
    known = recipes()
    if p.stem in known and (p.suffix in ("", ".yaml") and p.parent.name in ("", "configs", ".")):
        return known[p.stem]
    names = ", ".join(known) or "none installed"
    raise ConfigError(f"{p}: config file not found; shipped recipes (use the name or configs/NAME.yaml): {names}")


_recipe = resolve_recipe  # former private name


def _deepcopy(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _deepcopy(v) for k, v in d.items()}
    if isinstance(d, list):
        return [_deepcopy(v) for v in d]
    return d
