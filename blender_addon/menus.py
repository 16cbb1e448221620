"""Menu entries, so the operators are where Blender users look and F3 search finds them (it finds menu
items only): Shift+A > Mesh > AtlasVAE (sample), and the Object menu and object context menu
(reconstruct, variations, interpolate when two meshes are selected, and a Jobs & Backend submenu with
Cancel, the fine-tune and the backend's controls)."""

from __future__ import annotations

from typing import Any

import bpy

from .operators.common import selected_meshes


class VIEW3D_MT_atlasvae_add(bpy.types.Menu):
    """Add > Mesh > AtlasVAE: shapes sampled from the model."""

    bl_idname = "VIEW3D_MT_atlasvae_add"
    bl_label = "AtlasVAE"

    def draw(self, context: bpy.types.Context | None) -> None:
        layout = self.layout
        assert layout is not None
        layout.operator_context = "INVOKE_REGION_WIN"
        layout.operator("atlasvae.sample", text="Sample Shapes", icon="OUTLINER_OB_POINTCLOUD")
        one = layout.operator("atlasvae.sample", text="Sample One Shape", icon="MESH_ICOSPHERE")
        if one is not None:
            one.count = 1


class VIEW3D_MT_atlasvae_object(bpy.types.Menu):
    """Object > AtlasVAE and the object context menu: what the model can do with the selection."""

    bl_idname = "VIEW3D_MT_atlasvae_object"
    bl_label = "AtlasVAE"

    def draw(self, context: bpy.types.Context | None) -> None:
        layout = self.layout
        assert layout is not None
        layout.operator_context = "INVOKE_REGION_WIN"
        layout.operator("atlasvae.reconstruct", icon="MOD_REMESH")
        layout.operator("atlasvae.variations", icon="MOD_PARTICLES")
        if context is not None and len(selected_meshes(context)) == 2:
            layout.operator("atlasvae.interpolate", icon="IPO_LINEAR")
        layout.separator()
        layout.operator("atlasvae.sample", icon="OUTLINER_OB_POINTCLOUD")
        layout.menu(VIEW3D_MT_atlasvae_backend.bl_idname, icon="SETTINGS")


class VIEW3D_MT_atlasvae_backend(bpy.types.Menu):
    """Object > AtlasVAE > Jobs & Backend: stop what runs, fine-tune, and the backend's controls."""

    bl_idname = "VIEW3D_MT_atlasvae_backend"
    bl_label = "Jobs & Backend"

    def draw(self, context: bpy.types.Context | None) -> None:
        layout = self.layout
        assert layout is not None
        layout.operator("atlasvae.cancel", icon="CANCEL")
        layout.operator("atlasvae.finetune_start", icon="PLAY")
        layout.operator("atlasvae.finetune_cancel", icon="CANCEL")
        layout.separator()
        layout.operator("atlasvae.backend_start", icon="PLAY")
        layout.operator("atlasvae.backend_restart", icon="FILE_REFRESH")
        layout.operator("atlasvae.backend_stop", icon="PAUSE")
        layout.operator("atlasvae.release_memory", icon="TRASH")
        layout.operator("atlasvae.load_model", icon="IMPORT")
        layout.operator("atlasvae.open_log", icon="TEXT")
        layout.operator("atlasvae.open_folder", icon="FILE_FOLDER")


def draw_mesh_add(self: Any, context: bpy.types.Context) -> None:
    """Appended to Add > Mesh."""
    self.layout.separator()
    self.layout.menu(VIEW3D_MT_atlasvae_add.bl_idname, icon="OUTLINER_OB_POINTCLOUD")


def draw_object(self: Any, context: bpy.types.Context) -> None:
    """Appended to the Object menu and the object context menu."""
    self.layout.separator()
    self.layout.menu(VIEW3D_MT_atlasvae_object.bl_idname, icon="MOD_REMESH")


CLASSES = (VIEW3D_MT_atlasvae_add, VIEW3D_MT_atlasvae_backend, VIEW3D_MT_atlasvae_object)
HOSTS = (("VIEW3D_MT_mesh_add", draw_mesh_add), ("VIEW3D_MT_object", draw_object),
         ("VIEW3D_MT_object_context_menu", draw_object))


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    for host, fn in HOSTS:
        getattr(bpy.types, host).append(fn)


def unregister() -> None:
    for host, fn in HOSTS:
        getattr(bpy.types, host).remove(fn)
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
