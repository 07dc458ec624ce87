"""The episode report: what one rollout of an agent in a world came to (pure data, no Gymnasium)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

__all__ = ["EpisodeReport"]


@dataclass(frozen=True)
class EpisodeReport:
    """One episode.

    Fields:
        seed: the world's reset seed.
        success: the world's own success check at the end of the episode.
        steps: actions applied.
        episode_return: sum of the per-step rewards (0.0 without a reward component).
        reason: one line saying why the episode failed (empty on success), e.g. "timeout after 500
            steps: door at 0.12 rad (needs > 0.3)" or "plan refused: unreachable ...".
        ended: how it ended: "success" (terminated on the world's check), "agent_done" (the agent
            returned None), "timeout" (truncated at the horizon), "refused" (the agent had no plan),
            "error" (an exception; ``reason`` names it).
        seconds: wall time of the rollout.
        final_state: the world's privileged state at the end (plain data, for evaluation).
        rewards: per-step rewards (float, ``steps`` long).
        info: extra plain data (e.g. the last reward info).
    """

    seed: int
    success: bool
    steps: int
    episode_return: float
    reason: str
    ended: str
    seconds: float = 0.0
    final_state: Mapping[str, Any] = field(default_factory=dict)
    rewards: tuple[float, ...] = ()
    info: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.ended not in ("success", "agent_done", "timeout", "refused", "error"):
            raise ValueError(f"ended: {self.ended!r} is not one of success, agent_done, timeout, refused, error")
        if not self.success and not self.reason.strip():
            raise ValueError("reason: a failed episode needs a one-line reason")

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-able dict (``return`` is the episode return)."""
        ret = float(self.episode_return)
        return {"seed": int(self.seed), "success": bool(self.success), "steps": int(self.steps),
                "return": round(ret, 6) if math.isfinite(ret) else None, "reason": self.reason,
                "ended": self.ended, "seconds": round(float(self.seconds), 3)}

    @staticmethod
    def plain(value: Any) -> Any:
        """``value`` as JSON-able plain data (numpy arrays and scalars converted)."""
        if isinstance(value, Mapping):
            return {str(k): EpisodeReport.plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [EpisodeReport.plain(v) for v in value]
        if isinstance(value, np.ndarray):
            return value.tolist()
        if isinstance(value, np.generic):
            return value.item()
        return value
