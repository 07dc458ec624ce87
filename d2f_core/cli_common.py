"""What every ``d2f`` command shares: the console and the one-line error exit."""

from __future__ import annotations

import os
import sys

import typer


def console(stderr: bool = False, width: int | None = None):
    from rich.console import Console
    return Console(stderr=stderr, highlight=False, soft_wrap=True, width=width)


def fail(message: str, code: int = 2) -> None:
    """Print ``error: message`` in one red line and exit with ``code`` (2 bad input, 1 failure);
    with D2F_DEBUG=1 the exception being handled is raised instead, traceback and all."""
    if os.environ.get("D2F_DEBUG") and sys.exc_info()[0] is not None:
        raise
    console(stderr=True).print(f"[bold red]error:[/] {message}", markup=True)
    raise typer.Exit(code)
