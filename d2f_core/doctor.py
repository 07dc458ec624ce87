"""``d2f doctor [CONFIG]``: can this config run here, and if not, what to do.

For every component of the config (default: the paper's real recipe ``real/bread_in_bowl``) it
reports, without building anything or loading weights:

* whether the plugin is installed and its libraries import (``Registry.unavailable_reason``:
  the extra, the upstream checkout, the API keys, the version the adapter needs);
* whether its options validate;
* whether its weights are found: the options its options model declares in ``needs.weights``
  (:class:`d2f_core.devices.Needs`), after the config's ``weights:`` block is applied, with
  ``$VARIABLES`` that are not set named;
* the device and dtype it would use (``device: auto`` -> CUDA when available), and on CUDA the
  free GPU memory against what it needs (``needs.gpu_gb``; with its memory options
  ``needs.gpu_gb_min``); a CUDA-only component on a machine without CUDA is a problem;
* the headless GL line of :func:`d2f_core.gl.gl_choice` (MuJoCo rendering).

One line per problem, each with the fix; :attr:`Report.ok` is False (the CLI exits 1) when any
problem means the config cannot run. Light: imports no torch unless torch is installed (to ask
CUDA), builds no component.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ComponentReport", "Report", "diagnose", "DEFAULT_CONFIG"]

DEFAULT_CONFIG = "real/bread_in_bowl"
_VAR = re.compile(r"\$(\w+)|\$\{(\w+)\}")


@dataclass
class ComponentReport:
    kind: str
    plugin: str
    library: str = "ok"
    weights: str = "-"
    device: str = "-"
    memory: str = "-"
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"{self.kind:<11} {self.plugin:<18} library {self.library:<11} weights {self.weights:<9} "
                f"device {self.device:<15} {self.memory}")


@dataclass
class Report:
    config: str
    components: list[ComponentReport]
    problems: list[str]
    notes: list[str]
    gl: str
    cuda: str

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        out = [f"d2f doctor: {self.config}", self.cuda]
        out += [c.line() for c in self.components]
        out += [f"problem: {p}" for p in self.problems]
        out += [f"note: {n}" for n in self.notes]
        out.append(self.gl)
        out.append("ready: every component can run here" if self.ok else
                   f"not ready: {len(self.problems)} problem(s) above, each with its fix")
        return out


def _unset_vars(text: str) -> list[str]:
    return [a or b for a, b in _VAR.findall(text) if not os.environ.get(a or b)]


def _weights(kind: str, plugin: str, needs: Any, options: dict[str, Any], validated: Any,
             rep: ComponentReport) -> None:
    if needs is None or not needs.weights:
        return
    defaults: dict[str, Any] = {}
    if needs.default_weights is not None and validated is not None:
        try:
            defaults = dict(needs.default_weights(validated))
        except Exception:  # noqa: BLE001 - a default that cannot be computed is "not set"
            defaults = {}
    found = 0
    for name in needs.weights:
        value = options.get(name)
        where = f"{kind}.options.{name}"
        if value in (None, ""):
            value = defaults.get(name)
            if value is None:
                rep.problems.append(f"{kind} {plugin}: {where} is not set; download it ({needs.source}) and set it, "
                                    f"or add it to the config's weights block: weights: {{{plugin}: {{{name}: PATH}}}}")
                continue
            where += " (default location)"
        text = str(value)
        unset = _unset_vars(text)
        if unset:
            rep.problems.append(f"{kind} {plugin}: {where} = {text} uses ${unset[0]}, which is not set; export "
                                f"{unset[0]}=/path/to/your/weights (the folder holding the downloads)")
            continue
        if not Path(text).expanduser().exists():
            rep.problems.append(f"{kind} {plugin}: {where}: {text} not found; download it ({needs.source}) there, "
                                "or point the option at your copy")
            continue
        found += 1
    rep.weights = f"{found}/{len(needs.weights)}" if found < len(needs.weights) else "ok"


def _device(kind: str, plugin: str, needs: Any, validated: Any, rep: ComponentReport) -> None:
    from .devices import choose, cuda_available, free_gpu_memory

    has_device = validated is not None and hasattr(validated, "device")
    if needs is None and not has_device:
        return
    if has_device:
        try:
            choice = choose(getattr(validated, "device", "auto"), getattr(validated, "dtype", "auto"),
                            component=f"{kind} {plugin}", cuda_dtype=getattr(needs, "cuda_dtype", "float32"))
        except ValueError as e:
            rep.device = "?"
            rep.problems.append(f"{kind} {plugin}: {e}")
            return
        rep.device = f"{choice.device} {choice.dtype}"
        cuda, device = choice.is_cuda, choice.device
    else:
        cuda = cuda_available()
        device = "cuda" if cuda else "cpu"
        rep.device = device + (" (its SDK)" if needs is not None and needs.cuda_only else "")
    if needs is None:
        return
    if needs.cuda_only and not cuda:
        rep.problems.append(f"{kind} {plugin}: runs on CUDA only and this machine has no CUDA GPU "
                            "(torch.cuda.is_available() is False); run on a GPU machine or choose another "
                            f"{kind} plugin")
        return
    if not needs.gpu_gb:
        return
    if not cuda:
        rep.memory = f"needs ~{needs.gpu_gb:g} GiB on a GPU; CPU here"
        if needs.gpu_gb >= 16:
            rep.notes.append(f"{kind} {plugin}: runs on the CPU here (no CUDA); expect it to be very slow at real "
                             f"sizes (it wants ~{needs.gpu_gb:g} GiB of GPU memory)")
        return
    mem = free_gpu_memory(device)
    if mem is None:
        rep.memory = f"needs ~{needs.gpu_gb:g} GiB; free memory unknown"
        return
    free, total = mem
    rep.memory = f"needs ~{needs.gpu_gb:g} GiB, {free:.1f} of {total:.1f} GiB free"
    if free >= needs.gpu_gb:
        return
    low = needs.gpu_gb_min
    if low is not None and free >= low:
        rep.notes.append(f"{kind} {plugin}: {free:.1f} GiB free on {device}, less than the ~{needs.gpu_gb:g} GiB it "
                         f"needs at its defaults; set {needs.memory_options} (needs ~{low:g} GiB then)")
    else:
        fix = (f"set {needs.memory_options} (still ~{low:g} GiB) and free the GPU" if low is not None and
               needs.memory_options else "free the GPU or use a larger one")
        rep.problems.append(f"{kind} {plugin}: {free:.1f} GiB free on {device}, it needs ~{needs.gpu_gb:g} GiB; {fix}")


def diagnose(config: Any = None, *, overrides: list[str] | tuple[str, ...] = (), registry: Any = None) -> Report:
    """The doctor's report on ``config`` (a RunConfig, a path or a recipe name; default
    :data:`DEFAULT_CONFIG`)."""
    from .config import ConfigError, RunConfig, load_config
    from .devices import cuda_available, free_gpu_memory
    from .gl import gl_choice
    from .protocols import KINDS
    from .registry import PluginError, get_registry

    name = str(config) if config is not None and not isinstance(config, RunConfig) else (
        getattr(config, "name", "config") if config is not None else DEFAULT_CONFIG)
    problems: list[str] = []
    notes: list[str] = []
    gl = gl_choice().describe()
    if cuda_available():
        mem = free_gpu_memory("cuda")
        cuda = "CUDA: available" + (f" ({mem[0]:.1f} of {mem[1]:.1f} GiB free on cuda:0)" if mem else "")
    else:
        try:
            import torch  # noqa: F401
            cuda = "CUDA: not available (torch.cuda.is_available() is False): torch components run on the CPU"
        except ImportError:
            cuda = "CUDA: unknown (torch is not installed)"
    if isinstance(config, RunConfig):
        cfg = config
    else:
        try:
            cfg = load_config(config if config is not None else DEFAULT_CONFIG, list(overrides))
        except (ConfigError, OSError) as e:
            return Report(name, [], [f"config: {e}"], [], gl, cuda)
    reg = registry or get_registry()
    try:
        reg.discover()
    except PluginError as e:
        return Report(name, [], [f"plugins: {e}"], [], gl, cuda)
    for var in sorted({v for spec in cfg.weights.values() for p in spec.values() for v in _unset_vars(str(p))}):
        notes.append(f"${var} (used by the config's weights block) is not set")
    if cfg.scene is not None and not Path(cfg.scene).expanduser().is_dir():
        problems.append(f"scene: folder {cfg.scene} not found; give a scene folder in the official layout "
                        "(d2f world oracle TASK --out DIR writes one)")
    comps: list[ComponentReport] = []
    for kind in KINDS:
        comp = cfg.component(kind)
        if comp is None:
            continue
        rep = ComponentReport(kind, comp.plugin)
        comps.append(rep)
        _component(reg, kind, comp, rep)
        problems.extend(rep.problems)
        notes.extend(rep.notes)
    if gl_choice().problem and cfg.world is not None:
        problems.append(f"rendering: {gl_choice().problem}")
    return Report(name, comps, problems, notes, gl, cuda)


def _component(reg: Any, kind: str, comp: Any, rep: ComponentReport) -> None:
    from .registry import PluginError

    try:
        entry = reg.get(kind, comp.plugin, where=f"{kind}.plugin")
    except PluginError as e:
        rep.library = "missing"
        rep.problems.append(f"{kind}: {str(e).splitlines()[0]}")
        return
    m = entry.manifest
    why = reg.unavailable_reason(m)
    if why:
        rep.library = "missing"
        rep.problems.append(f"{kind} {comp.plugin}: {why}")
    needs = getattr(m.options_model, "needs", None) if m.options_model is not None else None
    validated = None
    try:
        validated = reg.validate_options(entry, comp.options, where=f"{kind}.options")
    except (PluginError, ValueError) as e:
        rep.problems.append(f"{kind} {comp.plugin}: {str(e).splitlines()[0]}")
    _weights(kind, comp.plugin, needs, dict(comp.options), validated, rep)
    _device(kind, comp.plugin, needs, validated, rep)
