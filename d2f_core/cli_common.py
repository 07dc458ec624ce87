"""What every ``d2f`` command shares: the console and the one-line error exit."""

from __future__ import annotations

import os
import sys

import typer

MAX_ERROR_CHARS = 600
"""An error line longer than this is cut in the middle (a hostile input must not flood the terminal)."""


def console(stderr: bool = False, width: int | None = None):
    from rich.console import Console
    return Console(stderr=stderr, highlight=False, soft_wrap=True, width=width)


def clip(text: str, limit: int = 200) -> str:
    """``text`` cut to about ``limit`` characters (the cut says how much was left out)."""
    text = str(text)
    if len(text) <= limit:
        return text
    keep = max(limit - 40, 20)
    return f"{text[:keep]}... ({len(text) - keep} more characters)"


def one_line(message: str, limit: int = MAX_ERROR_CHARS) -> str:
    """A message as one line: line breaks become "; ", control characters are dropped, long text is clipped."""
    lines = [ln.strip() for ln in str(message).splitlines() if ln.strip()]
    text = "; ".join(lines)
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return clip(text, limit)


def os_error_line(e: OSError) -> str:
    """One line for an OSError: the path, the reason, what to do."""
    where = e.filename if getattr(e, "filename", None) is not None else ""
    why = e.strerror or str(e) or type(e).__name__
    fix = {"PermissionError": "choose a folder you can write (--out)",
           "FileExistsError": "a file is in the way: remove it or choose another --out",
           "NotADirectoryError": "a file is in the way of a folder: choose another --out",
           "IsADirectoryError": "give a file name, not a folder"}.get(type(e).__name__, "check the path")
    return f"{where}: {why} ({type(e).__name__}); {fix}" if where else f"{type(e).__name__}: {why}; {fix}"


def debug_enabled() -> bool:
    return bool(os.environ.get("D2F_DEBUG"))


def fail(message: str, code: int = 2) -> None:
    """Print ``error: message`` in one red line and exit with ``code`` (2 bad input, 1 failure);
    with D2F_DEBUG=1 (or ``d2f --debug``) the exception being handled is raised instead, traceback and all.

    The message is printed as plain text, never as rich markup: ``pip install 'dream2flow[veo]'``
    keeps its ``[veo]`` and an input such as ``[/x]`` cannot break the printing."""
    if debug_enabled() and sys.exc_info()[0] is not None:
        raise
    from rich.text import Text
    line = Text("error:", style="bold red")
    line.append(" " + one_line(message))
    console(stderr=True).print(line)
    raise typer.Exit(code)
