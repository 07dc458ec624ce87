"""Conformance settings: the options ``d2f check`` builds a plugin with, and the checks it reports
as skipped for it. Test-only metadata, kept out of shipped plugin modules.

Where they come from, for a plugin of kind ``kind`` named ``name``:

1. the ``options`` argument of :func:`~d2f_conformance.check_plugin` (options only);
2. the settings table, keyed by ``(kind, name)``:

   * the built-in plugins' settings (:data:`d2f_conformance.builtin.BUILTIN`);
   * third-party plugins' settings, found through the entry-point group
     ``dream2flow.conformance`` (below), loaded lazily on the first look-up;
   * :func:`register_settings` (programmatic, e.g. from a conftest);

3. the deprecated ``check_options`` / ``check_skip`` fields of the plugin's ``Manifest``
   (still honoured, with a DeprecationWarning when the manifest is made);
4. nothing: the plugin is built with its default options and every check runs.

Third-party plugins name a module in the group ``dream2flow.conformance``; it is imported by
``d2f check`` and by :mod:`d2f_conformance` only, never by ``d2f plugins`` or a run, so it may
import test helpers freely. The module defines ``d2f_conformance_settings(register)`` (or the
entry point names the function itself, ``"pkg.module:function"``)::

    # pyproject.toml
    [project.entry-points."dream2flow.conformance"]
    my-tracker = "my_package.conformance"

    # my_package/conformance.py
    def d2f_conformance_settings(register):
        register("tracker", "my-tracker",
                 options=lambda env: {"weights": make_tiny_weights(env.tmp_dir)},  # or a plain dict
                 skip={"tracker_known_motion": "accuracy: random weights"})

``options`` is a dict or a callable ``(env) -> dict`` given a :class:`~d2f_conformance.CheckEnv`
(``env.tmp_dir`` is a scratch folder removed after the checks, ``env.scene`` the inputs the checks
feed). ``skip`` maps check names to why they are skipped; list accuracy checks only, never the
contract checks (types, shapes, units, conventions). A module that fails to import or register is
reported (a RuntimeWarning; fatal with ``D2F_STRICT_PLUGINS=1``, as for plugins), and a second
registration of the same ``(kind, name)`` is refused.
"""

from __future__ import annotations

import difflib
import os
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable, Iterable, Mapping

from d2f_core.protocols import KINDS

__all__ = ["ENTRY_POINT_GROUP", "HOOK_NAME", "ConformanceSettings", "SettingsTable", "settings_table",
           "settings_for", "register_settings", "reset_settings"]

ENTRY_POINT_GROUP = "dream2flow.conformance"
"""Entry-point group naming third-party modules with :data:`HOOK_NAME`."""
HOOK_NAME = "d2f_conformance_settings"
"""The function such a module defines: ``d2f_conformance_settings(register)``."""


@dataclass(frozen=True)
class ConformanceSettings:
    """How ``d2f check`` treats one plugin.

    Fields:
        options: options to build it with: a dict, or a callable ``(env) -> dict`` given a
            :class:`~d2f_conformance.CheckEnv` (None: the plugin's defaults).
        skip: check name -> why it is reported as skipped for this plugin.
        source: where the settings came from (for messages).
    """

    options: Mapping[str, Any] | Callable[[Any], Mapping[str, Any]] | None = None
    skip: Mapping[str, str] = field(default_factory=dict)
    source: str = ""

    def resolve_options(self, env: Any, plugin: str = "?") -> Mapping[str, Any] | None:
        """The options for this check run (calls ``options(env)`` when it is callable)."""
        opts = self.options(env) if callable(self.options) else self.options
        if opts is not None and not isinstance(opts, Mapping):
            raise TypeError(f"conformance options of {plugin!r} ({self.source or 'settings'}) gave "
                            f"{type(opts).__name__}; they must be a dict (or a callable (env) -> dict)")
        return opts


_NONE = ConformanceSettings(source="none")


def _strict_default() -> bool:
    return os.environ.get("D2F_STRICT_PLUGINS", "") not in ("", "0", "false")


class SettingsTable:
    """Conformance settings keyed by ``(kind, name)``: the built-in table, then third-party entry
    points (loaded on the first :meth:`get`), then programmatic :meth:`register` calls.

    Args:
        entry_points: the entry points to load (default: the installed group
            :data:`ENTRY_POINT_GROUP`).
        builtin: include :data:`d2f_conformance.builtin.BUILTIN`.
        strict: raise on a module that fails to load (default: ``D2F_STRICT_PLUGINS``).
    """

    def __init__(self, *, entry_points: Iterable[Any] | None = None, builtin: bool = True,
                 strict: bool | None = None) -> None:
        self._entry_points = entry_points
        self.strict = _strict_default() if strict is None else strict
        self._table: dict[tuple[str, str], ConformanceSettings] = {}
        self.failures: list[str] = []
        self._discovered = False
        if builtin:
            from .builtin import BUILTIN
            for (kind, name), s in BUILTIN.items():
                self.register(kind, name, options=s.options, skip=s.skip, source="d2f_conformance.builtin")

    # ------------------------------------------------------------------ registration
    def register(self, kind: str, name: str, *, options: Any = None, skip: Mapping[str, str] | None = None,
                 source: str = "register_settings", replace: bool = False) -> ConformanceSettings:
        """Add the settings of plugin ``name`` of ``kind``; refuses a second one unless ``replace``."""
        if kind not in KINDS:
            close = difflib.get_close_matches(str(kind), KINDS, n=1)
            raise ValueError(f"conformance settings for {name!r}: kind {kind!r} is not one of {', '.join(KINDS)}"
                             + (f" (did you mean {close[0]!r}?)" if close else ""))
        if not isinstance(name, str) or not name:
            raise ValueError(f"conformance settings: plugin name must be a non-empty string, got {name!r}")
        if options is not None and not (callable(options) or isinstance(options, Mapping)):
            raise TypeError(f"conformance settings for {kind} plugin {name!r}: options must be a dict or a "
                            f"callable (env) -> dict, got {type(options).__name__}")
        skip = dict(skip or {})
        from .checks import CHECKS
        names = [c.name for c in CHECKS[kind]]
        for check, why in skip.items():
            if check not in names:
                close = difflib.get_close_matches(str(check), names, n=1)
                raise ValueError(f"conformance settings for {kind} plugin {name!r}: no {kind} check named "
                                 f"{check!r}" + (f"; did you mean {close[0]!r}?" if close
                                                 else f"; checks: {', '.join(names)}"))
            if not isinstance(why, str) or not why.strip():
                raise ValueError(f"conformance settings for {kind} plugin {name!r}: say why {check!r} is "
                                 "skipped (a non-empty string)")
        key = (kind, name)
        if key in self._table and not replace:
            raise ValueError(f"conformance settings for {kind} plugin {name!r} from {source} refused: "
                             f"already given by {self._table[key].source}")
        self._table[key] = s = ConformanceSettings(options=options, skip=skip, source=source)
        return s

    # ------------------------------------------------------------------ discovery
    def discover(self) -> "SettingsTable":
        """Load the third-party entry points once. Idempotent."""
        if self._discovered:
            return self
        self._discovered = True
        eps = (self._entry_points if self._entry_points is not None
               else metadata.entry_points(group=ENTRY_POINT_GROUP))
        for ep in sorted(eps, key=lambda e: e.name):
            self._load(ep)
        if self.strict and self.failures:
            from d2f_core.registry import PluginLoadError
            raise PluginLoadError(f"{len(self.failures)} conformance-settings module(s) failed "
                                  "(D2F_STRICT_PLUGINS is set):\n" + "\n".join(f"  {f}" for f in self.failures))
        return self

    def _load(self, ep: Any) -> None:
        dist = getattr(getattr(ep, "dist", None), "metadata", None)
        label = f"{ep.name} = {ep.value}" + (f" ({dist['Name']})" if dist is not None else "")

        def fail(why: str) -> None:
            msg = f"entry point {label} in group {ENTRY_POINT_GROUP!r}: {why}"
            self.failures.append(msg)
            warnings.warn(msg, RuntimeWarning, stacklevel=4)

        try:
            obj = ep.load()
        except (Exception, SystemExit) as e:  # noqa: BLE001 - one package must not stop the others
            return fail(f"import raised {type(e).__name__}: {e}")
        func = obj if ":" in ep.value else getattr(obj, HOOK_NAME, None)
        if not callable(func):
            return fail(f"{ep.value!r} defines no function {HOOK_NAME}(register)")

        def register(kind: str, name: str, *, options: Any = None, skip: Mapping[str, str] | None = None) -> None:
            self.register(kind, name, options=options, skip=skip, source=f"entry point {label}")

        try:
            func(register)
        except Exception as e:  # noqa: BLE001
            fail(f"{HOOK_NAME} raised {type(e).__name__}: {e}")

    # ------------------------------------------------------------------ look-up
    def get(self, kind: str, name: str, manifest: Any = None) -> ConformanceSettings:
        """The settings of ``(kind, name)``; else the manifest's deprecated fields; else none."""
        self.discover()
        found = self._table.get((kind, name))
        if found is not None:
            return found
        co = getattr(manifest, "check_options", None)
        cs = getattr(manifest, "check_skip", None)
        if co is not None or cs:
            return ConformanceSettings(options=co, skip=dict(cs or {}),
                                       source=f"Manifest({name!r}).check_options/check_skip (deprecated)")
        return _NONE

    def __contains__(self, key: object) -> bool:
        self.discover()
        return key in self._table

    def keys(self) -> list[tuple[str, str]]:
        self.discover()
        return sorted(self._table)


_TABLE: SettingsTable | None = None


def settings_table() -> SettingsTable:
    """The process-wide table (built-in settings; entry points loaded on first look-up)."""
    global _TABLE
    if _TABLE is None:
        _TABLE = SettingsTable()
    return _TABLE


def settings_for(kind: str, name: str, manifest: Any = None) -> ConformanceSettings:
    """The conformance settings of plugin ``name`` of ``kind`` (see the module docstring)."""
    return settings_table().get(kind, name, manifest)


def register_settings(kind: str, name: str, *, options: Any = None, skip: Mapping[str, str] | None = None,
                      replace: bool = False) -> ConformanceSettings:
    """Add settings to the process-wide table by hand (a conftest, a notebook)."""
    return settings_table().register(kind, name, options=options, skip=skip, replace=replace)


def reset_settings(table: SettingsTable | None = None) -> None:
    """Forget the process-wide table (tests), or install ``table`` as it."""
    global _TABLE
    _TABLE = table
