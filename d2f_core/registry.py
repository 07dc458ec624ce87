"""Plugin discovery: entry points -> manifests, load failures, "did you mean".

Discovery is lazy (nothing happens until a plugin is asked for), cached (once per process and
registry), and guarded: a plugin module that raises on import, or registers something
malformed, is recorded as a :class:`LoadFailure` and the others keep working.
``D2F_STRICT_PLUGINS=1`` turns load failures into a :class:`PluginLoadError`.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import importlib.util
import inspect
import os
import re
import sys
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable, Iterable, Mapping

import pluggy

from . import hookspecs
from .protocols import KINDS, REQUIRED_METHODS

CORE_API_VERSION = 1
"""Major version of the component API. A manifest built for another version is refused."""

ENTRY_POINT_GROUP = "dream2flow"
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


class PluginError(Exception):
    """Base of plugin errors; messages say what to do."""


class PluginNotFoundError(PluginError, LookupError):
    pass


class PluginUnavailableError(PluginError):
    pass


class PluginLoadError(PluginError):
    pass


class OptionsError(PluginError, ValueError):
    pass


@dataclass(frozen=True)
class Manifest:
    """What a plugin registers.

    Fields:
        name: lower-case name used in configs (``tracker: {plugin: NAME}``), unique per kind.
        kind: one of :data:`d2f_core.protocols.KINDS`.
        factory: ``factory(options, ctx) -> component`` (or ``factory(options)``), or a
            ``"module:attr"`` string imported only when the component is built.
        options_model: pydantic model validating the ``options`` mapping (None = no options).
        capabilities: declared capabilities (see :data:`d2f_core.protocols.CAPABILITIES`).
        description: one line for ``d2f plugins``.
        extra: the pip extra that enables it (``pip install 'dream2flow[EXTRA]'``).
        requires: import names it needs; checked with ``importlib.util.find_spec`` (not imported).
        install: how to install what ``requires`` names when it is not on PyPI.
        available: optional ``() -> str | None`` returning why it cannot run here (missing weights,
            API key), None when it can. Must be cheap.
        stand_in: True when it stands in for a real model (simulator oracle, playback).
        verified: how it is tested here (e.g. "tiny random-weight model", "local HTTP server").
        check_options, check_skip: **deprecated** (a DeprecationWarning when given; still used by
            ``d2f check`` when d2f_conformance has no settings for the plugin). Test-only metadata
            does not belong in a shipped plugin module: give the options ``d2f check`` builds the
            plugin with, and the checks it skips, through the entry-point group
            ``dream2flow.conformance`` (see :mod:`d2f_conformance.settings`).
        uses: solvers only: the acting kinds (``dynamics``, ``estimator``, ``reward``) the solver can
            use, each mapped to the capability the component must declare (None: any). Configuring
            an acting kind the chosen solver does not list, or one lacking the capability, is an
            error before anything runs (never a silent substitution).
        api_version: the core API version it was written for.
    """

    name: str
    kind: str
    factory: Callable[..., Any] | str
    options_model: Any = None
    capabilities: frozenset[str] = frozenset()
    description: str = ""
    extra: str | None = None
    requires: tuple[str, ...] = ()
    install: str | None = None
    available: Callable[[], str | None] | None = None
    stand_in: bool = False
    verified: str = ""
    check_options: Any = None
    check_skip: Mapping[str, str] = field(default_factory=dict)
    uses: Mapping[str, str | None] = field(default_factory=dict)
    api_version: int = CORE_API_VERSION

    def __post_init__(self) -> None:
        object.__setattr__(self, "capabilities", frozenset(self.capabilities))
        object.__setattr__(self, "requires", tuple(self.requires))
        object.__setattr__(self, "uses", dict(self.uses))
        given = [f for f in ("check_options", "check_skip") if getattr(self, f)]
        if given:
            warnings.warn(
                f"Manifest({self.name!r}): {' and '.join(given)} {'is' if len(given) == 1 else 'are'} "
                "deprecated (test-only metadata in a shipped module); provide them through the entry-point "
                "group 'dream2flow.conformance' (a module with d2f_conformance_settings(register), see "
                "d2f_conformance.settings). `d2f check` still uses them until then.",
                DeprecationWarning, stacklevel=3)

    @classmethod
    def of(cls, component: type, *, factory: Callable[..., Any] | str | None = None,
           **overrides: Any) -> "Manifest":
        """The manifest of a component class, read from its class attributes.

        One short call per plugin: ``register(Manifest.of(MyTracker))``. Class attributes read
        (Manifest field <- attribute, default when absent):

        ============== ================ ==========================================================
        name           ``name``         required: the name used in configs
        kind           ``kind``         required: one of :data:`d2f_core.protocols.KINDS`
        options_model  ``Options``      None (a pydantic model of the plugin's options)
        capabilities   ``capabilities`` ``frozenset()``
        description    ``description``  ``""`` (one line for ``d2f plugins``)
        extra          ``extra``        None
        requires       ``requires``     ``()``
        install        ``install``      None
        available      ``available``    None; a ``staticmethod`` (it is called with no arguments)
        stand_in       ``stand_in``     ``"stand_in" in capabilities``
        verified       ``verified``     ``""``
        uses           ``uses``         ``{}`` (solvers only)
        api_version    ``api_version``  :data:`CORE_API_VERSION`
        ============== ================ ==========================================================

        ``factory`` defaults to building the class itself: ``Class(options)`` when its constructor
        takes a positional parameter (``Class()`` when it takes none), with ``ctx=ctx`` added when
        it has a parameter named ``ctx``. Pass a ``factory(options, ctx)`` (or a ``"module:attr"``
        string) when building needs more, e.g. heavy imports: they belong in the factory, so the
        plugin module stays cheap to import. Keyword ``overrides`` are Manifest fields and win
        over the class attributes (e.g. ``capabilities=...`` wider than an instance's default).
        """
        if not isinstance(component, type):
            raise TypeError(f"Manifest.of takes the component class, got {type(component).__name__} "
                            f"{component!r}; for a factory function use Manifest(name, kind, factory, ...)")
        fields = {f.name for f in dataclasses.fields(cls)} - {"factory"}
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise TypeError(f"Manifest.of({component.__name__}): unknown field(s) {unknown}; overrides are "
                            f"Manifest fields: {', '.join(sorted(fields))}")
        values: dict[str, Any] = {}
        for fname, attr in _CLASS_ATTRIBUTES.items():
            if fname in overrides:
                values[fname] = overrides.pop(fname)
                continue
            raw = inspect.getattr_static(component, attr, _MISSING)
            if raw is _MISSING:
                continue
            if fname == "available":
                if isinstance(raw, (staticmethod, classmethod)):
                    raw = getattr(component, attr)
                elif inspect.isfunction(raw):
                    raise TypeError(f"Manifest.of({component.__name__}): `available` must be a staticmethod "
                                    "(it is called with no arguments: () -> reason or None)")
            elif isinstance(raw, (staticmethod, classmethod, property)):
                raise TypeError(f"Manifest.of({component.__name__}): `{attr}` must be a plain class "
                                f"attribute, got a {type(raw).__name__}")
            values[fname] = raw
        for required in ("name", "kind"):
            if not isinstance(values.get(required), str):
                what = ("the name used in configs, e.g. name = \"my-tracker\"" if required == "name"
                        else f"one of {', '.join(KINDS)}, e.g. kind = \"tracker\"")
                got = (f"declares no `{required}`" if required not in values
                       else f"has `{required}` = {values[required]!r}, not a string")
                raise TypeError(f"Manifest.of({component.__name__}): the class {got}; add the class "
                                f"attribute {required} ({what}) or pass {required}=...")
        values.setdefault("stand_in", "stand_in" in frozenset(values.get("capabilities", ())))
        return cls(factory=factory if factory is not None else _class_factory(component), **values,
                   **overrides)


_MISSING = object()

_CLASS_ATTRIBUTES = {  # Manifest field -> component class attribute read by Manifest.of
    "name": "name", "kind": "kind", "options_model": "Options", "capabilities": "capabilities",
    "description": "description", "extra": "extra", "requires": "requires", "install": "install",
    "available": "available", "stand_in": "stand_in", "verified": "verified", "uses": "uses",
    "api_version": "api_version",
}


def _class_factory(component: type) -> Callable[..., Any]:
    """The default factory of :meth:`Manifest.of`: ``Class(options[, ctx=ctx])`` or ``Class()``."""

    def factory(options: Any, ctx: Any = None) -> Any:
        try:
            params = inspect.signature(component).parameters.values()
        except (TypeError, ValueError):  # no signature (a builtin base): give it the options
            return component(options)
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]
        wants_ctx = any(p.name == "ctx" and p.kind is not p.POSITIONAL_ONLY for p in params)
        args = (options,) if positional and positional[0].name != "ctx" else ()
        return component(*args, **({"ctx": ctx} if wants_ctx else {}))

    factory.__name__ = factory.__qualname__ = f"{component.__name__}.<default factory>"
    factory.__doc__ = f"Builds {component.__module__}.{component.__qualname__}(options)."
    return factory


@dataclass(frozen=True)
class LoadFailure:
    """A plugin that could not be loaded or registered."""

    name: str
    distribution: str
    version: str
    reason: str
    entry_point: str = ""
    kind: str = "unknown"


@dataclass
class Entry:
    """A registered manifest with where it came from."""

    manifest: Manifest
    distribution: str
    version: str
    entry_point: str

    @property
    def key(self) -> tuple[str, str]:
        return self.manifest.kind, self.manifest.name


@dataclass
class BuildContext:
    """Handed to factories: access to the other components of the run (built on demand).

    ``component("world")`` returns the run's world (None when the config has none).
    """

    seed: int = 0
    workdir: Any = None
    getter: Callable[[str], Any] | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def component(self, kind: str) -> Any:
        return self.getter(kind) if self.getter else None


def _kind_hint(*texts: str) -> str:
    """Guess a failed entry point's kind from its name/module path (for display only)."""
    from .protocols import KIND_SPECS
    aliases = {a: k.name for k in KIND_SPECS for a in k.aliases}
    for text in texts:
        for token in re.split(r"[^a-z0-9]+", text.lower()):
            if token in KINDS:
                return token
            if token in aliases:
                return aliases[token]
    return "unknown"


def _dist_of(ep: metadata.EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "?", "?"
    return dist.metadata["Name"] or "?", dist.version or "?"


class Registry:
    """Plugins found through entry points (and any registered by hand, e.g. in tests)."""

    def __init__(self, group: str = ENTRY_POINT_GROUP, *, entry_points: Iterable[Any] | None = None,
                 strict: bool | None = None) -> None:
        self.group = group
        self._entry_points = entry_points
        self.strict = (os.environ.get("D2F_STRICT_PLUGINS", "") not in ("", "0", "false")
                       if strict is None else strict)
        self._entries: dict[tuple[str, str], Entry] = {}
        self.failures: list[LoadFailure] = []
        self._discovered = False
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)

    # ------------------------------------------------------------------ discovery
    def discover(self) -> "Registry":
        """Load every entry point once; record failures. Idempotent."""
        if self._discovered:
            return self
        self._discovered = True
        eps = (self._entry_points if self._entry_points is not None
               else metadata.entry_points(group=self.group))
        for ep in sorted(eps, key=lambda e: e.name):
            self._load_entry_point(ep)
        if self.strict and self.failures:
            lines = "\n".join(f"  {f.name} ({f.distribution} {f.version}): {f.reason}" for f in self.failures)
            raise PluginLoadError(f"{len(self.failures)} plugin(s) failed to load "
                                  f"(D2F_STRICT_PLUGINS is set):\n{lines}")
        return self

    def _load_entry_point(self, ep: Any) -> None:
        dist, version = _dist_of(ep)
        label = f"{ep.name} = {ep.value}"
        try:
            obj = ep.load()
        except (Exception, SystemExit) as e:  # noqa: BLE001 - one plugin must not stop the others
            self._fail(ep.name, dist, version, f"import of {ep.value!r} raised "
                       f"{type(e).__name__}: {e}; fix or uninstall {dist}", label)
            return
        self.register_object(obj, name=ep.name, distribution=dist, version=version, entry_point=label)

    def register_object(self, obj: Any, *, name: str, distribution: str = "?", version: str = "?",
                        entry_point: str = "") -> None:
        """Register a module/object with ``d2f_register`` (and observer) hook implementations."""
        try:
            if self.pm.is_registered(obj) or self.pm.get_plugin(name) is not None:
                name = f"{name}@{distribution}"
            self.pm.register(obj, name=name)
        except Exception as e:  # PluginValidationError: hookimpl does not match the spec
            self._fail(name, distribution, version, f"invalid hook implementation: {e}", entry_point)
            return
        impls = [i for i in self.pm.hook.d2f_register.get_hookimpls() if i.plugin is obj]
        for impl in impls:
            registered: list[Any] = []
            try:
                impl.function(register=registered.append)
            except Exception as e:  # noqa: BLE001
                self._fail(name, distribution, version,
                           f"d2f_register raised {type(e).__name__}: {e}", entry_point)
                continue
            for m in registered:
                self.add(m, distribution=distribution, version=version, entry_point=entry_point or name)

    def add(self, manifest: Any, *, distribution: str = "?", version: str = "?",
            entry_point: str = "") -> bool:
        """Validate and add one manifest; a malformed one becomes a LoadFailure. Returns success."""
        problem = self._validate_manifest(manifest)
        if problem:
            label = getattr(manifest, "name", None) or entry_point or "?"
            kind = getattr(manifest, "kind", "unknown")
            self._fail(str(label), distribution, version, f"malformed registration: {problem}",
                       entry_point, kind if kind in KINDS else "unknown")
            return False
        key = (manifest.kind, manifest.name)
        if key in self._entries:
            other = self._entries[key]
            self._fail(manifest.name, distribution, version,
                       f"duplicate {manifest.kind} plugin name {manifest.name!r}, already registered by "
                       f"{other.distribution}; rename one of them", entry_point, manifest.kind)
            return False
        self._entries[key] = Entry(manifest, distribution, version, entry_point)
        return True

    @staticmethod
    def _validate_manifest(m: Any) -> str | None:
        if not isinstance(m, Manifest):
            return f"register() takes a d2f_core.Manifest, got {type(m).__name__}"
        if not isinstance(m.name, str) or not _NAME_RE.match(m.name):
            return f"name {m.name!r} must be lower-case letters, digits, '.', '_' or '-'"
        if m.kind not in KINDS:
            close = difflib.get_close_matches(str(m.kind), KINDS, n=1)
            return (f"kind {m.kind!r} of {m.name!r} is not one of {', '.join(KINDS)}"
                    + (f" (did you mean {close[0]!r}?)" if close else ""))
        if not (callable(m.factory) or (isinstance(m.factory, str) and ":" in m.factory)):
            return f"factory of {m.name!r} must be callable or a 'module:attr' string"
        if m.options_model is not None:
            try:
                from pydantic import BaseModel
            except ImportError:  # pragma: no cover
                BaseModel = object  # type: ignore
            if not (isinstance(m.options_model, type) and issubclass(m.options_model, BaseModel)):
                return f"options_model of {m.name!r} must be a pydantic BaseModel subclass"
        if m.api_version != CORE_API_VERSION:
            return (f"{m.name!r} targets core API {m.api_version}, this dream2flow provides "
                    f"{CORE_API_VERSION}; install a matching plugin or dream2flow version")
        from .protocols import ACTING_KINDS, CAPABILITIES
        bad_uses = sorted(set(m.uses) - set(ACTING_KINDS))
        if bad_uses and m.kind == "solver":
            return f"uses of {m.name!r} names {bad_uses}; a solver can declare only {list(ACTING_KINDS)}"
        if m.uses and m.kind != "solver":
            return f"uses is for solvers only; {m.name!r} is a {m.kind} plugin"
        known = set(CAPABILITIES["*"]) | set(CAPABILITIES.get(m.kind, {}))
        unknown = sorted(set(m.capabilities) - known)
        if unknown:
            return (f"{m.name!r} declares unknown capabilities {unknown}; known for {m.kind}: "
                    f"{sorted(known)}")
        return None

    def _fail(self, name: str, dist: str, version: str, reason: str, entry_point: str = "",
              kind: str | None = None) -> None:
        self.failures.append(LoadFailure(name=name, distribution=dist, version=version, reason=reason,
                                         entry_point=entry_point,
                                         kind=kind or _kind_hint(name, entry_point)))

    # ------------------------------------------------------------------ queries
    def entries(self, kind: str | None = None) -> list[Entry]:
        self.discover()
        out = [e for e in self._entries.values() if kind is None or e.manifest.kind == kind]
        return sorted(out, key=lambda e: (KINDS.index(e.manifest.kind), e.manifest.name))

    def unavailable_reason(self, manifest: Manifest) -> str | None:
        """Why the plugin cannot run here (missing extra, weights, key), or None."""
        missing = [mod for mod in manifest.requires if not _module_present(mod)]
        if missing:
            how = (f"pip install 'dream2flow[{manifest.extra}]'" if manifest.extra else "")
            if manifest.install:
                how = f"{how}; then {manifest.install}" if how else manifest.install
            return f"needs {', '.join(missing)} (not installed): {how or 'install it'}"
        if manifest.available is not None:
            try:
                return manifest.available()
            except Exception as e:  # noqa: BLE001
                return f"availability check raised {type(e).__name__}: {e}"
        return None

    def get(self, kind: str, name: str, *, where: str | None = None) -> Entry:
        """The entry for ``kind``/``name``; unknown names raise with the installed list."""
        self.discover()
        if kind not in KINDS:
            raise PluginNotFoundError(f"unknown component kind {kind!r}; kinds are {', '.join(KINDS)}")
        entry = self._entries.get((kind, name))
        if entry is not None:
            return entry
        names = [e.manifest.name for e in self.entries(kind)]
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        place = f" (config: {where})" if where else ""
        msg = f"no {kind} plugin named {name!r}{place}."
        if close:
            msg += f" Did you mean {', '.join(repr(c) for c in close)}?"
        msg += f" Installed {kind} plugins: {', '.join(names) or 'none'}."
        failed = [f for f in self.failures if f.name == name or f.kind == kind]
        if failed:
            msg += " Failed to load: " + "; ".join(f"{f.name}: {f.reason}" for f in failed) + "."
        other = [k for k in KINDS if (k, name) in self._entries]
        if other:
            msg += f" ({name!r} exists as a {'/'.join(other)} plugin.)"
        msg += " `d2f plugins` lists everything installed."
        raise PluginNotFoundError(msg)

    def validate_options(self, entry: Entry, options: Mapping[str, Any] | None, *,
                         where: str | None = None) -> Any:
        """Validate ``options`` with the plugin's own model; errors name path, plugin, valid keys."""
        m = entry.manifest
        options = dict(options or {})
        place = where or f"{m.kind}.options"
        if m.options_model is None:
            if options:
                raise OptionsError(f"{place}: plugin {m.name!r} ({m.kind}) takes no options, got "
                                   f"{sorted(options)}; remove them")
            return None
        from pydantic import ValidationError
        try:
            return m.options_model.model_validate(options)
        except ValidationError as e:
            valid = list(m.options_model.model_fields)
            lines = []
            for err in e.errors():
                loc = ".".join(str(p) for p in err["loc"])
                text = err["msg"]
                if err["type"] == "extra_forbidden":
                    close = difflib.get_close_matches(str(err["loc"][-1]), valid, n=1)
                    text = "unknown key" + (f"; did you mean {close[0]!r}?" if close else "")
                elif "input" in err and err["type"] != "missing":
                    text += f" (got {err['input']!r})"
                lines.append(f"{place}.{loc}: {text}")
            raise OptionsError(f"invalid options for {m.kind} plugin {m.name!r}: " + "; ".join(lines)
                               + f". Valid keys: {', '.join(valid) or 'none'}") from None

    def create(self, kind: str, name: str, options: Mapping[str, Any] | None = None, *,
               ctx: BuildContext | None = None, where: str | None = None) -> Any:
        """Build a component: look up, check availability, validate options, call the factory."""
        entry = self.get(kind, name, where=f"{where}.plugin" if where else None)
        reason = self.unavailable_reason(entry.manifest)
        if reason:
            raise PluginUnavailableError(f"{kind} plugin {name!r} is unavailable here: {reason}")
        opts = self.validate_options(entry, options, where=f"{where}.options" if where else None)
        factory = _resolve_factory(entry.manifest.factory)
        ctx = ctx or BuildContext()
        try:
            n_params = len(inspect.signature(factory).parameters)
        except (TypeError, ValueError):
            n_params = 2
        component = factory(opts, ctx) if n_params >= 2 else factory(opts)
        missing = [meth for meth in REQUIRED_METHODS[kind] if not callable(getattr(component, meth, None))]
        if missing:
            raise PluginError(f"{kind} plugin {name!r} built an object without {', '.join(missing)}(); "
                              f"it must follow d2f_core.protocols.{_protocol_name(kind)}")
        return component

    def rows(self) -> list[dict[str, Any]]:
        """One JSON-able dict per plugin and per load failure (``d2f plugins --json``)."""
        rows = []
        for e in self.entries():
            m = e.manifest
            reason = self.unavailable_reason(m)
            rows.append({
                "name": m.name, "kind": m.kind, "package": e.distribution, "version": e.version,
                "status": "unavailable" if reason else "ok", "error": reason,
                "capabilities": sorted(m.capabilities), "extra": m.extra, "description": m.description,
                "stand_in": m.stand_in, "verified": m.verified, "install": m.install,
                "entry_point": e.entry_point,
            })
        for f in self.failures:
            rows.append({
                "name": f.name, "kind": f.kind, "package": f.distribution, "version": f.version,
                "status": "failed", "error": f.reason, "capabilities": [], "extra": None,
                "description": "", "stand_in": False, "verified": "", "install": None,
                "entry_point": f.entry_point,
            })
        return rows


def _protocol_name(kind: str) -> str:
    from .protocols import PROTOCOLS
    return PROTOCOLS[kind].__name__


def _module_present(name: str) -> bool:
    if name in sys.modules:
        return True
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _resolve_factory(factory: Callable[..., Any] | str) -> Callable[..., Any]:
    if callable(factory):
        return factory
    module, _, attr = factory.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


_REGISTRY: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry (discovered on first use)."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = Registry()
    return _REGISTRY


def reset_registry(registry: Registry | None = None) -> None:
    """Forget the cached registry (tests), or install ``registry`` as the process-wide one."""
    global _REGISTRY
    _REGISTRY = registry
