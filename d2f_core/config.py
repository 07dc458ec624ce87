"""Run configuration: YAML -> pydantic, ``--set a.b.c=value`` overrides, per-plugin options.

The run config names one plugin per component kind; each plugin validates its own ``options``
with its own pydantic model (see :meth:`d2f_core.registry.Registry.validate_options`), so a
typo is an error naming the config path, the plugin and the valid keys.
"""

from __future__ import annotations

import difflib
import math
import os
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator, model_validator

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
    video_fps: float | None = Field(None, gt=0, description="frame rate of the rollout video, Hz: the world is "
                                                            "rendered every round(control_freq / video_fps) steps "
                                                            "(default: the generated video's frame rate; rendering "
                                                            "every step costs more than simulating it)")
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
    estimator: ComponentConfig | None = Field(None, description="dynamics: the estimator that gives the particles "
                                              "while collecting transitions (default: the run's); Push-T trains on "
                                              "the simulator's object poses (`sim-particles`), as the paper does")
    from_checkpoint: bool = Field(False, description="dynamics: start from the model's configured `checkpoint` "
                                  "option (fine-tune) instead of from scratch (the option is then dropped)")

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
    scene_depth_scale: float | None = Field(None, gt=0, description="metres per unit of the scene's "
                                            "initial_depth file when it is not in metres (0.001 for millimetres)")
    flow: FlowConfig = Field(default_factory=FlowConfig)
    grasp: GraspConfig = Field(default_factory=GraspConfig)
    execute: ExecuteConfig = Field(default_factory=ExecuteConfig)
    train: TrainConfig = Field(default_factory=TrainConfig, description="options of `d2f train` (steps, "
                               "transitions, chunk, checkpoint_every, keep, log_every, seed, tensorboard)")
    weights: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="local weights per component, keyed by the plugin's name: "
        "{PLUGIN: {OPTION: PATH}}, e.g. {wan2.1: {weights: $D2F_WEIGHTS/Wan2.1-I2V-14B-480P-Diffusers}}; "
        "~ and $VARIABLES are expanded; fills the options of the component using that plugin that its "
        "own options do not set; entries for plugins the run does not use are ignored")

    @field_validator("name")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        import re
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,99}", v or "") or ".." in v:
            raise ValueError(f"{v[:80]!r} is not a plain run name (it names the folder runs/NAME-seedN): use letters, "
                             "digits, _ . + - (no / or .., at most 100 characters), or choose the folder with --out")
        return v

    @field_validator("weights")
    @classmethod
    def _weights_keys(cls, v: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        kinds = {k.name for k in KIND_SPECS}
        for key in v:
            if key in kinds:
                raise ValueError(f"weights.{key}: {key!r} is a component kind; key the weights by the plugin's name "
                                 f"(e.g. weights: {{wan2.1: {{weights: DIR}}}}), so switching {key}.plugin does not "
                                 "hand them to another plugin")
        return v

    @model_validator(mode="after")
    def _fill_weights(self) -> "_RunConfigBase":
        for spec in KIND_SPECS:
            comp = getattr(self, spec.name, None)
            if comp is None or comp.plugin not in self.weights:
                continue
            for option, path in self.weights[comp.plugin].items():
                comp.options.setdefault(option, expand_path(path))
        return self

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


def expand_path(path: str) -> str:
    """``~`` and ``$VARIABLES`` expanded (an unset variable stays as written, so the error names it)."""
    return os.path.expanduser(os.path.expandvars(str(path)))


# ----------------------------------------------------------------------------- overrides


def parse_value(text: str) -> Any:
    """YAML-typed value of an override (``5`` -> int, ``true`` -> bool, ``[1, 2]`` -> list)."""
    try:
        return yaml.safe_load(text) if text != "" else ""
    except (yaml.YAMLError, RecursionError):
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
            got = repr(err["input"])
            msg += f" (got {got[:160] + f'... ({len(got) - 160} more characters)' if len(got) > 200 else got})"
        lines.append(f"{source}: {path}: {msg}")
    return "\n".join(lines)


def _check_finite(node: Any, path: str, source: str) -> None:
    """No .inf / .nan anywhere in a config: no option of a run means anything with them."""
    if isinstance(node, float) and not math.isfinite(node):
        raise ConfigError(f"{source}: {path or 'value'}: {node!r} is not a finite number; give a finite value")
    if isinstance(node, dict):
        for k, v in node.items():
            _check_finite(v, f"{path}.{k}" if path else str(k), source)
    elif isinstance(node, (list, tuple)):
        for i, v in enumerate(node):
            _check_finite(v, f"{path}[{i}]", source)


def config_from_dict(data: Mapping[str, Any], *, source: str = "config") -> RunConfig:
    data = _deepcopy(dict(data), budget=[MAX_CONFIG_VALUES], source=source)
    _check_finite(data, "", source)
    try:
        return RunConfig.model_validate(data)
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
            raw = read_yaml(p, ConfigError) or {}
    else:
        raw = data
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping (task:, world:, video:, ...)")
    raw = apply_overrides(_deepcopy(raw, budget=[MAX_CONFIG_VALUES], source=source), list(overrides))
    return config_from_dict(raw, source=source)


def recipes() -> dict[str, Path]:
    """The configs shipped with the package (``configs/*.yaml`` and ``configs/real/*.yaml``, package
    ``d2f_configs``): name (``open_oven``, ``real/open_oven``) -> path."""
    from importlib.resources import files

    try:
        root = Path(str(files("d2f_configs")))
    except ModuleNotFoundError:
        return {}
    out = {f.stem: f for f in sorted(root.glob("*.yaml"))}
    for sub in sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(("_", "."))):
        out.update({f"{sub.name}/{f.stem}": f for f in sorted(sub.glob("*.yaml"))})
    return out


def resolve_recipe(p: Path) -> Path:
    """A missing config path that names a shipped recipe (``open_oven``, ``configs/open_oven.yaml``,
    ``real/open_oven``) resolves to it, so recipes run from any folder; else a ConfigError listing them."""
    known = recipes()
    if p.suffix in ("", ".yaml"):
        if p.parent.name in ("", "configs", ".") and p.stem in known:
            return known[p.stem]
        sub = f"{p.parent.name}/{p.stem}"
        if sub in known and p.parent.parent.name in ("", "configs", "."):
            return known[sub]
    names = ", ".join(known) or "none installed"
    raise ConfigError(f"{p}: config file not found; shipped recipes (use the name or configs/NAME.yaml): {names}")


_recipe = resolve_recipe  # former private name


MAX_CONFIG_VALUES = 100_000
"""A config expanding (through YAML aliases) to more values than this is refused (an alias bomb)."""


def _deepcopy(d: Any, budget: list[int] | None = None, source: str = "config") -> Any:
    if budget is not None:
        budget[0] -= 1
        if budget[0] < 0:
            raise ConfigError(f"{source}: expands to more than {MAX_CONFIG_VALUES} values (YAML anchors and "
                              "aliases repeating each other?); write the config out plainly")
    if isinstance(d, dict):
        return {k: _deepcopy(v, budget, source) for k, v in d.items()}
    if isinstance(d, list):
        return [_deepcopy(v, budget, source) for v in d]
    return d


class _DuplicateKey(yaml.YAMLError):
    pass


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                try:
                    key = self.construct_object(key_node, deep=True)
                    hash(key)
                except Exception:  # noqa: BLE001 - let the base class report unhashable keys
                    continue
                if key in seen:
                    raise _DuplicateKey(f"line {key_node.start_mark.line + 1}: key {str(key)[:80]!r} is given twice "
                                        f"(first on line {seen[key].line + 1}); keep one")
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                                 lambda loader, node: loader.construct_mapping(node))


MAX_YAML_BYTES = 4 << 20
"""YAML files (configs, scene data) larger than this are refused before parsing."""


def read_yaml(path: str | Path, error: type[Exception] = ValueError) -> Any:
    """A YAML file's data with one-line errors (raised as ``error``) naming the file: missing, too big,
    not UTF-8, not valid YAML, a key given twice."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_YAML_BYTES:
            raise error(f"{p}: {size} bytes; a YAML file over {MAX_YAML_BYTES >> 20} MiB is refused")
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise error(f"{p}: not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start}); save the file "
                    "as UTF-8") from None
    except IsADirectoryError:
        raise error(f"{p}: is a folder; give a YAML file") from None
    except OSError as e:
        raise error(f"{p}: cannot read ({e.strerror or type(e).__name__})") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except _DuplicateKey as e:
        raise error(f"{p}: {e}") from None
    except RecursionError:
        raise error(f"{p}: nested too deeply to be a config; write it out plainly") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None)
        text = f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark and problem else str(e)
        raise error(f"{p}: not valid YAML ({' '.join(text.split())[:300]})") from None
