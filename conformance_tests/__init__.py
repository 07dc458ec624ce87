"""d2f_conformance: the public conformance suite for dream2flow plugins.

Function API (no pytest needed)::

    from d2f_conformance import check_plugin, check_component, format_results, all_passed
    print(format_results(check_plugin("zero-motion")))

pytest base classes (imported lazily, so pytest is only needed when you use them)::

    from d2f_conformance import TrackerConformance

    class TestMyTracker(TrackerConformance):
        @pytest.fixture
        def component(self):
            return MyTracker()

Checks look only at the protocol and the declared capabilities, never at plugin names; each
failure says what is wrong and how to fix it. See ``d2f_conformance.checks.CHECKS`` for the list.

The options ``d2f check`` builds a plugin with, and the checks it skips, are conformance settings
(:mod:`d2f_conformance.settings`): the built-in plugins' table is :mod:`d2f_conformance.builtin`;
a third-party package names a module in the entry-point group ``dream2flow.conformance``. Local
stand-ins of remote services (Veo, Kling) are in :mod:`d2f_conformance.standins`.
"""

from __future__ import annotations

from typing import Any

from .api import all_passed, check_component, check_plugin, format_results, make_env, run_check
from .checks import CHECKS, Check, check_names
from .results import CheckFailed, CheckResult, CheckSkipped
from .scenes import CheckEnv, standard_scene
from .settings import ConformanceSettings, SettingsTable, register_settings, settings_for

from d2f_core.protocols import KIND_SPECS as _KIND_SPECS

_BASE_CLASSES = ("ConformanceBase", *(f"{_k.protocol.__name__}Conformance" for _k in _KIND_SPECS))

__all__ = [
    "check_component", "check_plugin", "format_results", "all_passed", "make_env", "run_check",
    "CHECKS", "Check", "check_names", "CheckResult", "CheckFailed", "CheckSkipped", "CheckEnv",
    "standard_scene", "ConformanceSettings", "SettingsTable", "register_settings", "settings_for",
    *_BASE_CLASSES,
]


def __getattr__(name: str) -> Any:
    if name in _BASE_CLASSES:
        from . import base  # imports pytest
        return getattr(base, name)
    raise AttributeError(f"module 'd2f_conformance' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_BASE_CLASSES))
