"""Outcome of one conformance check, and the exceptions a check raises.

A check is a function ``check_<name>(component, env) -> None``. It returns normally when the
component honours the contract, raises :class:`CheckFailed` with a message saying what is wrong
*and how to fix it*, or :class:`CheckSkipped` saying why the check does not apply (a capability
that is not declared, an input the environment cannot provide).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

__all__ = ["CheckResult", "CheckFailed", "CheckSkipped", "STATUSES"]

STATUSES = ("passed", "failed", "skipped")


class CheckFailed(Exception):
    """The component breaks a contract. The message says what is wrong; how to fix it."""


class CheckSkipped(Exception):
    """The check does not apply to this component (the message says why)."""


@dataclass(frozen=True)
class CheckResult:
    """One check run on one component.

    Fields:
        check: the check's name (public API, e.g. ``"tracker_known_motion"``; ``"build"`` when the
            plugin could not be built).
        kind: the component kind (one of :data:`d2f_core.protocols.KINDS`).
        plugin: the plugin's (or component's) name.
        status: ``"passed"``, ``"failed"`` or ``"skipped"``.
        message: for a failure what is wrong and how to fix it; for a skip why; else "".
        seconds: wall time of the check.
    """

    check: str
    kind: str
    plugin: str
    status: Literal["passed", "failed", "skipped"]
    message: str = ""
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"CheckResult.status: must be one of {STATUSES}, got {self.status!r}")

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    @property
    def skipped(self) -> bool:
        return self.status == "skipped"

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-able dict (``d2f check --json``)."""
        out = asdict(self)
        out["seconds"] = round(float(self.seconds), 6)
        return out
