"""Esc cancels the running AtlasVAE action, like Blender's own jobs: a Window keymap entry for
atlasvae.cancel, whose poll fails while nothing runs, so Esc then goes on to whatever else uses it."""

from __future__ import annotations

import bpy

_items: list[tuple[bpy.types.KeyMap, bpy.types.KeyMapItem]] = []


def register() -> None:
    wm = bpy.context.window_manager
    keyconfig = wm.keyconfigs.addon if wm is not None else None
    if keyconfig is None:  # no key configuration (some background sessions): nothing to bind
        return
    keymap = keyconfig.keymaps.new(name="Window", space_type="EMPTY")
    _items.append((keymap, keymap.keymap_items.new("atlasvae.cancel", "ESC", "PRESS")))


def unregister() -> None:
    for keymap, item in _items:
        keymap.keymap_items.remove(item)
    _items.clear()
