"""Main-thread feedback from outside an operator (the timer, notifications): a report in the Info log and
status bar, the window manager's progress value, and redrawing the 3D viewport sidebars."""

from __future__ import annotations

import bpy

from .runtime import note


def wm_progress(value: float) -> None:
    """Move the window manager's progress indicator (if there is a window manager)."""
    wm = bpy.context.window_manager
    if wm is not None:
        wm.progress_update(value)


def report(level: str, message: str) -> None:
    """Report from outside an operator (timer): Info log + status bar via the report operator."""
    note(level, message)
    print(f"AtlasVAE {level}: {message}")
    window = any_window()
    if window is None or bpy.app.background:  # background: an ERROR report would raise in the caller
        return
    try:
        with bpy.context.temp_override(window=window):
            bpy.ops.atlasvae.report_message(level=level, message=message)  # type: ignore[attr-defined]
    except (RuntimeError, AttributeError) as exc:
        print(f"AtlasVAE: could not show report ({exc})")


def any_window() -> bpy.types.Window | None:
    """The first window, for operator calls that need one (None in background mode)."""
    wm = bpy.context.window_manager
    if wm is None or not wm.windows:
        return None
    return wm.windows[0]


def tag_redraw() -> None:
    """Redraw 3D viewport sidebars so status and progress stay current."""
    wm = bpy.context.window_manager
    if wm is None:
        return
    for window in wm.windows:
        screen = window.screen
        if screen is None:
            continue
        for area in screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()
