"""Progress events of training and refitting: to the caller's callback, or to stderr on a terminal run."""

from __future__ import annotations

import sys
from typing import Any, Callable

ProgressFn = Callable[[dict[str, Any]], None]


def emit(progress: ProgressFn | None, event: dict[str, Any]) -> None:
    """Send an event to the caller; with no caller (a terminal run), print its message to stderr."""
    if progress is not None:
        progress(event)
    elif event.get("message"):
        print(event["message"], file=sys.stderr, flush=True)


def quiet(event: dict[str, Any]) -> None:
    """The progress sink of ranks other than 0: they neither print nor draw a progress bar."""
