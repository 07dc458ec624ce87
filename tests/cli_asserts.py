"""Assertions shared by the CLI tests."""

from __future__ import annotations


def one_line_error(result, *needles: str, code: int = 2) -> str:
    """A CLI result that failed with exit ``code`` and one line starting ``error:`` holding every needle."""
    out = result.output.strip()
    assert result.exit_code == code, out
    assert "Traceback" not in out
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), out
    for n in needles:
        assert n in out, (n, out)
    return out
