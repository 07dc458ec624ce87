"""Checks of rewards (d2f_core.protocols.Reward)."""

from __future__ import annotations

from .common import Check, common_checks

CHECKS: list[Check] = [
    *common_checks("reward"),
]
