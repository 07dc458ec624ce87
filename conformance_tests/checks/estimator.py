"""Checks of estimators (d2f_core.protocols.StateEstimator)."""

from __future__ import annotations

from .common import Check, common_checks

CHECKS: list[Check] = [
    *common_checks("estimator"),
]
