"""The "AtlasVAE" sidebar tab in the 3D viewport: model and backend, sample, reconstruct,
interpolate, variations and fine-tune sections. Drawing only reads state; operators change it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import bpy

from . import jobs
from .operators import (
    ATLASVAE_OT_backend_restart, ATLASVAE_OT_backend_start, ATLASVAE_OT_backend_stop, ATLASVAE_OT_finetune_cancel,
    ATLASVAE_OT_finetune_start, ATLASVAE_OT_interpolate, ATLASVAE_OT_load_model, ATLASVAE_OT_reconstruct,
    ATLASVAE_OT_refresh_models, ATLASVAE_OT_release_memory, ATLASVAE_OT_sample, ATLASVAE_OT_variations,
    selected_meshes,
)
from .preferences import addon_settings
from .properties import runtime, settings

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import IconItems

STATUS_ICONS: dict[str, IconItems] = {"stopped": "PAUSE", "starting": "SORTTIME", "ready": "CHECKMARK", "busy": "SORTTIME",
                "error": "ERROR"}


def _format_eta(seconds: float) -> str:
    seconds = int(max(0.0, seconds))
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _resolution(layout: bpy.types.UILayout, context: bpy.types.Context) -> None:
    s = settings(context)
    layout.prop(s, "resolution_preset")
    if s.resolution_preset == "CUSTOM":
        layout.prop(s, "custom_resolution")


class _AtlasPanel(bpy.types.Panel):
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "AtlasVAE"

    def panel_layout(self) -> bpy.types.UILayout:
        """The panel's layout (Blender sets it while drawing)."""
        layout = self.layout
        assert layout is not None
        return layout

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.scene is not None and hasattr(context.scene, "atlasvae")


class VIEW3D_PT_atlasvae(_AtlasPanel):
    """The AtlasVAE tab: model choice and the common actions; the sections below are sub-panels."""

    bl_label = "AtlasVAE"
    bl_idname = "VIEW3D_PT_atlasvae"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.panel_layout()
        s = settings(context)
        row = layout.row(align=True)
        row.prop(s, "model", text="")
        row.operator(ATLASVAE_OT_refresh_models.bl_idname, text="", icon="FILE_REFRESH")
        col = layout.column(align=True)
        col.operator(ATLASVAE_OT_sample.bl_idname, icon="OUTLINER_OB_POINTCLOUD")
        col.operator(ATLASVAE_OT_reconstruct.bl_idname, icon="MOD_REMESH")
        state_rt = runtime()
        if state_rt is not None and state_rt.last_report:
            for line in _wrap(state_rt.last_report, 40):
                layout.label(text=line)


class _AtlasSubPanel(_AtlasPanel):
    bl_parent_id = "VIEW3D_PT_atlasvae"


class VIEW3D_PT_atlasvae_model(_AtlasSubPanel):
    """Model loading, device and backend status with start/restart/stop/release."""

    bl_label = "Model & Backend"
    bl_idname = "VIEW3D_PT_atlasvae_model"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.panel_layout()
        layout.operator(ATLASVAE_OT_load_model.bl_idname, icon="IMPORT")
        state, text = jobs.backend.status()
        device = addon_settings().device
        running_on = (jobs.backend.handshake or {}).get("device")
        box = layout.box()
        box.label(text=f"Backend: {state}", icon=STATUS_ICONS.get(state, "QUESTION"))
        for line in _wrap(text, 40):
            box.label(text=line)
        box.label(text=f"Device: {device}" + (f" (running on {running_on})" if running_on else ""))
        row = layout.row(align=True)
        row.operator(ATLASVAE_OT_backend_start.bl_idname, text="Start", icon="PLAY")
        row.operator(ATLASVAE_OT_backend_restart.bl_idname, text="Restart", icon="FILE_REFRESH")
        row.operator(ATLASVAE_OT_backend_stop.bl_idname, text="Stop", icon="PAUSE")
        layout.operator(ATLASVAE_OT_release_memory.bl_idname, icon="TRASH")


class VIEW3D_PT_atlasvae_sample(_AtlasSubPanel):
    """Sample new shapes from the model."""

    bl_label = "Sample Shapes"
    bl_idname = "VIEW3D_PT_atlasvae_sample"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.panel_layout()
        s = settings(context)
        layout.prop(s, "family")
        layout.prop(s, "count")
        row = layout.row(align=True)
        row.prop(s, "seed")
        row.prop(s, "random_seed", text="", icon="FILE_REFRESH")
        layout.prop(s, "temperature")
        _resolution(layout, context)
        layout.prop(s, "spacing")
        layout.operator(ATLASVAE_OT_sample.bl_idname, icon="OUTLINER_OB_POINTCLOUD")


class VIEW3D_PT_atlasvae_reconstruct(_AtlasSubPanel):
    """Reconstruct the selected meshes through the model."""

    bl_label = "Reconstruct"
    bl_idname = "VIEW3D_PT_atlasvae_reconstruct"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.panel_layout()
        _resolution(layout, context)
        count = len(selected_meshes(context))
        layout.label(text=f"{count} mesh object(s) selected")
        layout.operator(ATLASVAE_OT_reconstruct.bl_idname, icon="MOD_REMESH")


class VIEW3D_PT_atlasvae_interpolate(_AtlasSubPanel):
    """Morph between two selected meshes."""

    bl_label = "Interpolate"
    bl_idname = "VIEW3D_PT_atlasvae_interpolate"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.panel_layout()
        layout.prop(settings(context), "steps")
        objs = selected_meshes(context)
        if len(objs) == 2:
            layout.label(text=f"{objs[0].name} -> {objs[1].name}")
        else:
            layout.label(text="Select two meshes (the active one is the end)")
        layout.operator(ATLASVAE_OT_interpolate.bl_idname, icon="IPO_LINEAR")


class VIEW3D_PT_atlasvae_variations(_AtlasSubPanel):
    """Random variations of the active mesh."""

    bl_label = "Variations"
    bl_idname = "VIEW3D_PT_atlasvae_variations"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.panel_layout()
        s = settings(context)
        layout.prop(s, "variation_count")
        layout.prop(s, "spread")
        layout.prop(s, "variation_seed")
        layout.operator(ATLASVAE_OT_variations.bl_idname, icon="MOD_PARTICLES")


class VIEW3D_PT_atlasvae_finetune(_AtlasSubPanel):
    """Fine-tune on a folder of meshes, with progress."""

    bl_label = "Fine-tune"
    bl_idname = "VIEW3D_PT_atlasvae_finetune"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.panel_layout()
        s = settings(context)
        layout.prop(s, "finetune_data")
        layout.prop(s, "finetune_epochs")
        layout.prop(s, "finetune_name")
        row = layout.row(align=True)
        row.operator(ATLASVAE_OT_finetune_start.bl_idname, icon="PLAY")
        row.operator(ATLASVAE_OT_finetune_cancel.bl_idname, text="Cancel", icon="CANCEL")
        state = runtime()
        if state is None or not state.job_state:
            return
        text = f"{state.job_state}: epoch {state.epoch}/{state.epochs}"
        if state.loss:
            text += f", loss {state.loss:.4g}"
        if state.job_running() and state.eta_s > 0:
            text += f", ETA {_format_eta(state.eta_s)}"
        progress = getattr(layout, "progress", None)
        if progress is not None:
            progress(factor=float(state.progress), type="BAR", text=text)
        else:
            layout.label(text=f"{text} ({state.progress * 100:.0f}%)")
        if state.job_message:
            for line in _wrap(state.job_message, 40)[:3]:
                layout.label(text=line)


def _wrap(text: str, width: int) -> list[str]:
    """Split `text` into lines of at most `width` characters at spaces (labels do not wrap)."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    if current:
        lines.append(current)
    return lines or [""]


CLASSES = (VIEW3D_PT_atlasvae, VIEW3D_PT_atlasvae_model, VIEW3D_PT_atlasvae_sample, VIEW3D_PT_atlasvae_reconstruct,
           VIEW3D_PT_atlasvae_interpolate, VIEW3D_PT_atlasvae_variations, VIEW3D_PT_atlasvae_finetune)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
