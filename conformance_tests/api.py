"""The function API: check a component or an installed plugin, format the results.

>>> from d2f_conformance import check_plugin, format_results, all_passed
>>> results = check_plugin("zero-motion")
>>> print(format_results(results)); assert all_passed(results)
"""

from __future__ import annotations

import difflib
import shutil
import tempfile
import textwrap
import time
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from d2f_core.protocols import KINDS

from .checks import CHECKS, Check
from .results import CheckFailed, CheckResult, CheckSkipped
from .scenes import CheckEnv, ConformanceScene, standard_scene

__all__ = ["check_component", "check_plugin", "run_check", "format_results", "all_passed", "make_env"]


@lru_cache(maxsize=1)
def _shared_scene() -> ConformanceScene:
    scene = standard_scene()
    for a in (scene.depth, scene.masks):  # shared between runs: nobody may write into it
        a.flags.writeable = False
    return scene


def make_env(tmp_dir: str | Path | None = None, *, problem_factory: Callable[[CheckEnv], Any] | None = None
             ) -> CheckEnv:
    """A CheckEnv with the standard scene (``tmp_dir`` defaults to a new temporary folder)."""
    tmp = Path(tmp_dir) if tmp_dir is not None else Path(tempfile.mkdtemp(prefix="d2f-check-"))
    return CheckEnv(tmp_dir=tmp, scene=_shared_scene(), problem_factory=problem_factory)


def run_check(check: Check, component: Any, env: CheckEnv) -> tuple[str, str]:
    """Run one check: (status, message). Unexpected exceptions are failures naming the exception."""
    try:
        check.func(component, env)
    except CheckFailed as e:
        return "failed", str(e)
    except CheckSkipped as e:
        return "skipped", str(e)
    except Exception as e:  # noqa: BLE001 - a plugin error the check did not wrap
        return "failed", f"{type(e).__name__}: {e}"
    return "passed", ""


def _select(kind: str, only: Iterable[str] | None, skip: Iterable[str] | None) -> list[Check]:
    checks = CHECKS[kind]
    names = [c.name for c in checks]
    for label, given in (("only", only), ("skip", skip)):
        for n in given or ():
            if n not in names:
                close = difflib.get_close_matches(n, names, n=1)
                raise ValueError(f"{label}: no {kind} check named {n!r}"
                                 + (f"; did you mean {close[0]!r}?" if close else f"; checks: {', '.join(names)}"))
    if only:
        checks = [c for c in checks if c.name in set(only)]
    if skip:
        checks = [c for c in checks if c.name not in set(skip)]
    return checks


def check_component(component: Any, kind: str, *, env: CheckEnv | None = None, plugin: str | None = None,
                    only: Iterable[str] | None = None, skip: Iterable[str] | None = None,
                    problem_factory: Callable[[CheckEnv], Any] | None = None) -> list[CheckResult]:
    """Run the common and ``kind`` checks on a built component.

    Args:
        component: the object to check (any object following the kind's protocol).
        kind: one of :data:`d2f_core.protocols.KINDS`.
        env: inputs (standard scene, temp folder); a fresh one by default.
        plugin: name to report (default: ``component.name``).
        only / skip: check names to run / leave out (e.g. accuracy checks for a random-weight model).
        problem_factory: ``(env) -> Problem`` for solver checks (default: the doubles' problem).
    """
    if kind not in KINDS:
        close = difflib.get_close_matches(str(kind), KINDS, n=1)
        raise ValueError(f"kind: {kind!r} is not one of {', '.join(KINDS)}"
                         + (f" (did you mean {close[0]!r}?)" if close else ""))
    checks = _select(kind, only, skip)
    own_env = env is None
    env = env or make_env(problem_factory=problem_factory)
    if problem_factory is not None:
        env.problem_factory = problem_factory
    if env.world is None:  # checks of a component bound to a world run only with one (check_plugin(world=...))
        from .checks.embodiment import NEEDS_WORLD
        checks = [c for c in checks if c.name not in NEEDS_WORLD]
    label = plugin or str(getattr(component, "name", type(component).__name__))
    results = []
    try:
        for check in checks:
            t0 = time.perf_counter()
            status, message = run_check(check, component, env)
            results.append(CheckResult(check=check.name, kind=kind, plugin=label,
                                       status=status,  # type: ignore[arg-type]
                                       message=message, seconds=time.perf_counter() - t0))
    finally:
        env.cache.clear()
        if own_env:
            shutil.rmtree(env.tmp_dir, ignore_errors=True)
    return results


def check_plugin(name: str, kind: str | None = None, *, options: Mapping[str, Any] | None = None,
                 registry: Any = None, ctx: Any = None, only: Iterable[str] | None = None,
                 skip: Iterable[str] | None = None,
                 problem_factory: Callable[[CheckEnv], Any] | None = None,
                 settings: Any = None, world: str | None = None,
                 world_options: Mapping[str, Any] | None = None) -> list[CheckResult]:
    """Build an installed plugin and run its checks (every kind registered under ``name`` when
    ``kind`` is None).

    ``world`` (embodiments only; ignored for other kinds): the name of a world plugin to bind the
    embodiment to: the world is built with this embodiment as the run's (its options:
    ``world_options``, else the world's conformance settings), which binds it; a ``bind`` result
    reports that, and the bound-embodiment checks then run against it (``CheckEnv.world``).

    Options default to the plugin's conformance settings (:mod:`d2f_conformance.settings`: the
    built-in table, third-party ``dream2flow.conformance`` entry points, or the deprecated
    ``Manifest.check_options``): a dict, or a callable ``(env) -> dict`` given a :class:`CheckEnv`
    whose ``tmp_dir`` it may write files into. Checks the settings list under ``skip`` are
    reported as skipped with their reason. ``settings`` is the
    :class:`~d2f_conformance.settings.SettingsTable` to use (default: the process-wide one).

    The plugin is built with ``ctx`` or a BuildContext whose ``component(kind)`` is None (worlds
    use their default embodiment). A plugin that cannot be built gives one ``build`` result: skipped when it is
    unavailable here (missing extra, weights, key), failed otherwise, with the reason.

    Raises LookupError (PluginNotFoundError) when no plugin has that name.
    """
    from d2f_core.registry import BuildContext, PluginNotFoundError, PluginUnavailableError, get_registry

    from .settings import settings_table

    registry = registry or get_registry()
    settings = settings if settings is not None else settings_table()
    if kind is not None:
        entries = [registry.get(kind, name)]
    else:
        entries = [e for e in registry.entries() if e.manifest.name == name]
        if not entries:
            names = sorted({e.manifest.name for e in registry.entries()})
            close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
            raise PluginNotFoundError(f"no plugin named {name!r}"
                                      + (f"; did you mean {', '.join(map(repr, close))}?" if close else "")
                                      + f" Installed: {', '.join(names) or 'none'}.")
    results: list[CheckResult] = []
    for entry in entries:
        m = entry.manifest
        env = make_env(problem_factory=problem_factory)
        try:
            t0 = time.perf_counter()

            def build_result(status: str, message: str) -> CheckResult:
                return CheckResult(check="build", kind=m.kind, plugin=m.name, status=status,  # type: ignore[arg-type]
                                   message=message, seconds=time.perf_counter() - t0)

            reason = registry.unavailable_reason(m)
            if reason:
                results.append(build_result("skipped", f"unavailable here: {reason}"))
                continue
            own_settings = settings.get(m.kind, m.name, m)
            try:
                opts = options if options is not None else own_settings.resolve_options(env, m.name)
                build_ctx = ctx if ctx is not None else BuildContext(seed=0, workdir=env.tmp_dir)
                component = registry.create(m.kind, m.name, opts, ctx=build_ctx)
            except PluginUnavailableError as e:
                results.append(build_result("skipped", str(e)))
                continue
            except Exception as e:  # noqa: BLE001 - any build error is the finding
                results.append(build_result("failed", f"could not build {m.kind} plugin {m.name!r}: "
                                                      f"{type(e).__name__}: {e}"))
                continue
            if world is not None and m.kind == "embodiment":
                bind = _bind_world(component, world, world_options, registry, settings, env, m.name)
                results.append(bind)
                if bind.status != "passed":
                    continue
            declared = dict(own_settings.skip)
            own = [c for c in _select(m.kind, only, skip) if c.name in declared]
            for c in own:
                results.append(CheckResult(check=c.name, kind=m.kind, plugin=m.name, status="skipped",
                                           message=f"declared by the plugin: {declared[c.name]}", seconds=0.0))
            results.extend(check_component(component, m.kind, env=env, plugin=m.name, only=only,
                                           skip=list(skip or ()) + [c.name for c in own]))
        finally:
            close = getattr(env.world, "close", None)
            env.world = None
            if callable(close):
                close()
            shutil.rmtree(env.tmp_dir, ignore_errors=True)
    return results


def _bind_world(component: Any, world: str, world_options: Mapping[str, Any] | None, registry: Any, settings: Any,
                env: CheckEnv, plugin: str) -> CheckResult:
    """Build world plugin ``world`` with ``component`` as the run's embodiment (it binds it); keep it in
    ``env.world``. One ``bind`` result: passed, skipped (world unavailable here) or failed (with why)."""
    from d2f_core.registry import BuildContext, PluginUnavailableError

    t0 = time.perf_counter()

    def result(status: str, message: str) -> CheckResult:
        return CheckResult(check="bind", kind="embodiment", plugin=plugin, status=status,  # type: ignore[arg-type]
                           message=message, seconds=time.perf_counter() - t0)

    try:
        entry = registry.get("world", world, where="--world")
    except Exception as e:  # noqa: BLE001 - unknown world: the registry's message has "did you mean"
        return result("failed", str(e))
    reason = registry.unavailable_reason(entry.manifest)
    if reason:
        return result("skipped", f"world {world!r} is unavailable here: {reason}")
    try:
        opts = world_options if world_options is not None else \
            settings.get("world", world, entry.manifest).resolve_options(env, world)
        ctx = BuildContext(seed=0, workdir=env.tmp_dir, getter=lambda k: component if k == "embodiment" else None)
        built = registry.create("world", world, opts, ctx=ctx)
        if getattr(component, "world", None) is not built:  # worlds bind their embodiment; bind if this one did not
            component.bind(built)
    except PluginUnavailableError as e:
        return result("skipped", str(e))
    except Exception as e:  # noqa: BLE001 - the finding: this embodiment does not work in that world
        return result("failed", f"building world {world!r} with embodiment {plugin!r} failed: {type(e).__name__}: {e}")
    env.world = built
    return result("passed", f"bound to world {world!r}")


def all_passed(results: Iterable[CheckResult]) -> bool:
    """True when no result failed (skips are fine)."""
    return not any(r.status == "failed" for r in results)


def format_results(results: Iterable[CheckResult], *, width: int = 100, summary: bool = True) -> str:
    """A plain-text table (plugin, kind, check, status, seconds), failure/skip reasons indented below,
    and (``summary``) a closing "N passed, N failed, N skipped" line."""
    results = list(results)
    if not results:
        return "no checks ran"
    mark = {"passed": "PASS", "failed": "FAIL", "skipped": "skip"}
    w_plugin = max(6, *(len(r.plugin) for r in results))
    w_kind = max(4, *(len(r.kind) for r in results))
    w_check = max(5, *(len(r.check) for r in results))
    head = f"{'plugin':<{w_plugin}}  {'kind':<{w_kind}}  {'check':<{w_check}}  status  seconds"
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(f"{r.plugin:<{w_plugin}}  {r.kind:<{w_kind}}  {r.check:<{w_check}}  {mark[r.status]:<6}  "
                     f"{r.seconds:7.3f}")
        if r.message and r.status != "passed":
            lines += textwrap.wrap(r.message, width=width, initial_indent="    -> ", subsequent_indent="       ")
    n = {s: sum(r.status == s for r in results) for s in ("passed", "failed", "skipped")}
    if summary:
        lines.append(f"{n['passed']} passed, {n['failed']} failed, {n['skipped']} skipped")
    return "\n".join(lines)
