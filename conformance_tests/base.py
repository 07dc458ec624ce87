"""pytest base classes, one per protocol (like pandas' extension base tests).

Subclass one in your plugin's tests and override the ``component`` fixture::

    from d2f_conformance import TrackerConformance

    class TestMyTracker(TrackerConformance):
        @pytest.fixture
        def component(self):
            return MyTracker()

Every check of :data:`d2f_conformance.checks.CHECKS` for that kind becomes a test method
``test_<check name>`` that fails with the check's message (what is wrong, how to fix it) or is
skipped with its reason. Override ``problem_factory`` (solvers) to check on your own Problem, and
``skip_checks`` (a class attribute) to leave checks out, e.g. accuracy checks on random weights.
This module is the only one of d2f_conformance that imports pytest.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from d2f_core.protocols import KIND_SPECS

from .api import make_env, run_check
from .checks import CHECKS, Check

__all__ = ["ConformanceBase", *(f"{k.protocol.__name__}Conformance" for k in KIND_SPECS)]


class ConformanceBase:
    """Shared fixtures; subclasses set ``kind`` and get one test per check."""

    kind: ClassVar[str] = ""
    skip_checks: ClassVar[tuple[str, ...]] = ()

    @pytest.fixture
    def component(self) -> Any:
        pytest.fail(f"{type(self).__name__}: override the `component` fixture to return the {self.kind} "
                    "component under test", pytrace=False)

    @pytest.fixture
    def problem_factory(self) -> Any:
        """``(env) -> Problem`` for solver checks; None uses d2f_conformance.doubles.default_problem."""
        return None

    @pytest.fixture
    def conformance_env(self, tmp_path: Any, problem_factory: Any) -> Any:
        return make_env(tmp_path, problem_factory=problem_factory)


def _make_test(check: Check) -> Any:
    def test(self: ConformanceBase, component: Any, conformance_env: Any) -> None:
        if check.name in self.skip_checks:
            pytest.skip(f"{check.name} is listed in {type(self).__name__}.skip_checks")
        status, message = run_check(check, component, conformance_env)
        if status == "failed":
            pytest.fail(f"{check.name}: {message}", pytrace=False)
        if status == "skipped":
            pytest.skip(message)

    test.__name__ = test.__qualname__ = f"test_{check.name}"
    test.__doc__ = check.doc
    return test


def _conformance_class(name: str, kind: str) -> type:
    namespace: dict[str, Any] = {"kind": kind, "__module__": __name__,
                                 "__doc__": f"Conformance tests of a {kind} component: override the "
                                            f"`component` fixture. Checks: "
                                            + ", ".join(c.name for c in CHECKS[kind]) + "."}
    for check in CHECKS[kind]:
        namespace[f"test_{check.name}"] = _make_test(check)
    return type(name, (ConformanceBase,), namespace)


# one class per kind, named after its protocol (VideoModelConformance, StateEstimatorConformance, ...),
# generated from the kinds table so a new kind gets its base class with no edit here
for _spec in KIND_SPECS:
    _name = f"{_spec.protocol.__name__}Conformance"
    globals()[_name] = _conformance_class(_name, _spec.name)
del _spec, _name
