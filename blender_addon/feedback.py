"""Main-thread feedback from outside an operator (the timer, notifications): a report in the Info log and
status bar (and a popup for errors, with the buttons that fix them), the window manager's progress value,
and redrawing the 3D viewport sidebars."""

from __future__ import annotations

import bpy

from .bpyfree.installer import InstallError
from .bpyfree.locate import LocateError
from .runtime import note

ADDON = __package__ or ""  # the add-on's module name, which Preferences > Add-ons shows it under
SETUP, LOG = "SETUP", "LOG"  # what fixes an error: the backend's set-up (preferences, installer) or its log
WRAP = 38  # characters per label line in the sidebar at its default width
POPUP_WRAP = 80  # characters per label line in the error popup


def wrap(text: str, width: int = WRAP) -> list[str]:
    """Split `text` into lines of at most `width` characters at spaces (labels do not wrap); a word
    longer than a line (a path) is cut into pieces, so nothing is ever dropped."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        while len(word) > width:
            if current:
                lines.append(current)
                current = ""
            lines.append(word[:width])
            word = word[width:]
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    if current:
        lines.append(current)
    return lines or [""]


def fix_for(exc: BaseException) -> str:
    """What fixes `exc`: SETUP when no usable backend Python or model was found, LOG otherwise."""
    return SETUP if isinstance(exc, (LocateError, InstallError)) else LOG


def draw_fixes(layout: bpy.types.UILayout, fix: str) -> None:
    """The buttons that fix an error of kind `fix` (the popup and the sidebar's message box share them)."""
    if fix == SETUP:
        op = layout.operator("preferences.addon_show", text="Open Add-on Preferences", icon="PREFERENCES")
        if op is not None:
            op.module = ADDON
        layout.operator("atlasvae.install_backend", icon="IMPORT")
    layout.operator("atlasvae.open_log", icon="TEXT")


def error_title(message: str) -> str:
    """The error popup's title: what failed ("Sample Shapes failed" of "Sample Shapes failed: reason")."""
    head, sep, _reason = message.partition(": ")
    return f"AtlasVAE: {head}" if sep else "AtlasVAE error"


def draw_error(layout: bpy.types.UILayout, message: str, fix: str) -> None:
    """The error popup's body: the reason in full (the title says what failed), then the fixing buttons."""
    _head, sep, reason = message.partition(": ")
    column = layout.column(align=True)
    for line in wrap(reason if sep else message, POPUP_WRAP):
        column.label(text=line)
    layout.separator()
    draw_fixes(layout, fix)


def wm_progress(value: float) -> None:
    """Move the window manager's progress indicator (if there is a window manager)."""
    wm = bpy.context.window_manager
    if wm is not None:
        wm.progress_update(value)


def report(level: str, message: str, fix: str = LOG) -> None:
    """Report from outside an operator (timer): the panel's message box, and in a window the Info log and
    status bar (an error there as a warning), plus for an error one popup with the whole message and
    `fix`'s buttons (report_message, started as a modal operator so that Blender files its report like
    any operator's instead of raising it into Python)."""
    note(level, message, fix if level == "ERROR" else "")
    print(f"AtlasVAE {level}: {message}")
    window = any_window()
    if window is None or bpy.app.background:
        return
    try:
        with bpy.context.temp_override(window=window):
            bpy.ops.atlasvae.report_message("INVOKE_DEFAULT", level=level, message=message,  # type: ignore[attr-defined]
                                            fix=fix)
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
