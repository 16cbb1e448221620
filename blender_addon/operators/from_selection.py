# mypy: disable-error-code="valid-type"
"""Operators that read the selected meshes: Reconstruct, Interpolate, Variations.

Each captures its meshes (modifiers applied, world space) and options on the main thread (the options
default to the sidebar's last values), asks the backend off it (interactive Blender), possibly with a
request-time fit that shows progress and can be cancelled, and builds the results beside the sources
with building.build_objects, one undo step per action.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import bpy
import numpy as np
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty

from .. import jobs
from ..feedback import counted
from ..bpyfree.backend_process import Backend
from ..bpyfree.explorer import latent_fields, result_props, shifted
from ..bpyfree.layout import beside, box_of, free_shift, gap, standing, translation
from ..bpyfree.uvs import template_uvs
from ..bpyfree.wire import decode_mesh, encode_mesh
from ..mesh_convert import MeshConvertError
from ..properties import ENDPOINT_FITS, FIT_MODES, settings
from .building import (
    Arrays, LookOptions, NewObject, Source, build_objects, capture, decode_all, destination, dropped_note,
    earlier_results, look_of, look_defaults, surface_params, surfaces_of,
)
from .common import OPTION, ModelOperator, dispatch, fail, launch_config, selected_meshes

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems


def _object_frame(src: Source) -> np.ndarray | None:
    """The inverse of the source's world matrix, or None when it is singular (a zero scale)."""
    if abs(float(np.linalg.det(src.matrix[:3, :3]))) < 1e-12:
        return None
    return np.linalg.inv(src.matrix)


def _frame_of(src: Source, world: np.ndarray) -> np.ndarray:
    """The 4x4 map from reply coordinates (world space of the source) to those _in_frame_of gives the result."""
    inverse = _object_frame(src)
    return shifted(-world.min(axis=0)) if inverse is None else inverse


def _in_frame_of(src: Source, world: np.ndarray, offset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(object-space vertices, world matrix) for a result shown at `offset` from `src` with the source's
    own location, rotation and scale as its object transform (identity frame if it has none)."""
    inverse = _object_frame(src)
    if inverse is None:
        return world - world.min(axis=0), translation(world.min(axis=0) + offset)
    local = world @ inverse[:3, :3].T + inverse[:3, 3]
    return local, translation(offset) @ src.matrix


class _FromSelection(ModelOperator):
    """Operators that work on selected meshes: capture them, or say which one cannot be used and why."""

    def _capture(self, context: bpy.types.Context, objs: list[bpy.types.Object]) -> list[Source] | str:
        try:
            return [capture(context, o) for o in objs]
        except MeshConvertError as exc:
            return str(exc)


class ATLASVAE_OT_reconstruct(LookOptions, _FromSelection):
    """Rebuild each selected mesh through the model, beside its source and with its transform (sources untouched)"""

    bl_idname = "atlasvae.reconstruct"
    bl_label = "Reconstruct Selected"
    bl_options = {"REGISTER", "UNDO"}
    kind = "reconstruct"

    fit: EnumProperty(name="Fit", description="How closely each result follows its mesh", items=FIT_MODES,
                      default="full", options=OPTION)
    fit_steps: IntProperty(name="Fit Steps", description="Optimisation steps of a Latent or Full fit; 0 = the "
                           "backend's measured default (more steps: closer, slower)", default=0, min=0, max=5000,
                           options=OPTION)

    panel_defaults = {"fit": lambda s: s.fit, **look_defaults()}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if not super().poll(context):
            return False
        if not selected_meshes(context):
            cls.poll_message_set("Select at least one mesh object to reconstruct")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        self.fill_from_panel(context)
        objs = selected_meshes(context)
        if not objs:
            return fail(self, "Select at least one mesh object to reconstruct")
        sources = self._capture(context, objs)
        if isinstance(sources, str):
            return fail(self, sources)
        resolution, config, dest = int(self.resolution), launch_config(settings(context)), destination(context)
        fit, fit_steps = str(self.fit), int(self.fit_steps)
        skipped = [o.name for o in (context.selected_objects or []) if o.type != "MESH"]
        look_for = look_of(self)
        asked: dict[str, Any] = {"resolution": resolution, "fit": fit, **surface_params(self)}  # all but the mesh
        if fit_steps and fit != "encoder":
            asked["steps"] = fit_steps

        def work(task: jobs.Task, backend: Backend
                 ) -> tuple[dict[str, Any], list[tuple[Source, Arrays, Any, dict[str, Any]]], Any]:
            client, info = backend.ensure_model(config)
            out = []
            for i, src in enumerate(sources):
                text = f"Reconstructing {src.name} ({i + 1}/{len(sources)}, fit {fit})"
                task.advance(i / len(sources), text)
                params = {"mesh": encode_mesh(src.vertices, src.faces), **asked}
                reply = jobs.call_fitting(task, client, "reconstruct", params, done=i / len(sources),
                                          share=1 / len(sources), text=text)
                out.append((src, decode_mesh(reply["mesh"]), reply.get("chamfer"), reply["mesh"]))
            task.advance(1.0, f"Adding {counted(len(sources), 'reconstruction')}")
            return info, out, template_uvs(client, info, resolution)

        def apply(result: tuple[dict[str, Any], list[tuple[Source, Arrays, Any, dict[str, Any]]], Any]
                  ) -> jobs.Steps:
            info, items, uvs = result
            model = str(info.get("name", "model"))
            obstacles = earlier_results(dest.scene, exclude={src.name for src, *_rest in items})
            obstacles += [box_of(src.vertices) for src, *_rest in items]
            surfaces, dropped = surfaces_of([wire for *_rest, wire in items])
            parts, objects = [], []
            for (src, (vertices, faces), chamfer, wire), kind in zip(items, surfaces):
                step = gap(src.vertices)
                lo, hi = box_of(vertices)
                offset = np.array([beside(src.vertices, vertices), 0.0, 0.0])
                offset += free_shift([(lo + offset, hi + offset)], obstacles, step)
                obstacles.append((lo + offset, hi + offset))
                local, matrix = _in_frame_of(src, vertices, offset)
                props: dict[str, Any] = {"model": model, "source": src.name, "resolution": resolution, "fit": fit,
                                         "surface": kind, **result_props(latent_fields([wire])[0],
                                                                         config.model_path, _frame_of(src, vertices),
                                                                         asked["face_budget"])}
                if chamfer is not None:
                    props["chamfer_x1e3"] = float(chamfer)
                objects.append(NewObject(f"{src.name}_recon", local, faces, matrix, props))
                parts.append(f"{src.name} {chamfer:.3f}" if chamfer is not None else f"{src.name} n/a")
            look = look_for(uvs)
            yield from build_objects(dest, objects, "AtlasVAE: Reconstruct", look=look)
            text = f"Reconstructed {len(items)} with {model}; Chamfer x1e-3: " + ", ".join(parts) + dropped_note(dropped)
            if skipped:
                text += f" (skipped non-mesh: {', '.join(skipped)})"
            return text

        meshes = tuple((s.name, s.matrix.tobytes(), s.vertices.tobytes(), s.faces.tobytes()) for s in sources)
        task = jobs.Task(self.kind, "Reconstruct", work, apply, reuse=bool(self.options.is_repeat),
                         content=(config.model_path, tuple(sorted(asked.items())), meshes))
        return dispatch(self, task, f"Reconstructing {counted(len(sources), 'object')}...")


class ATLASVAE_OT_interpolate(LookOptions, _FromSelection):
    """Shapes morphing from the other selected mesh to the active one: a row of objects, or one with shape keys"""

    bl_idname = "atlasvae.interpolate"
    bl_label = "Interpolate"
    bl_options = {"REGISTER", "UNDO"}
    kind = "interpolate"

    steps: IntProperty(name="Steps", description="Shapes from the first to the second object, both included",
                       default=5, min=2, max=256, options=OPTION)
    as_shape_keys: BoolProperty(name="As Shape Keys", description="One object with a shape key per step "
                                "(animatable) instead of one object per step", default=False, options=OPTION)
    fit: EnumProperty(name="Fit", description="How the two meshes are read: Latent optimises each end's code, "
                      "so the ends match the meshes better while every step stays the model's", items=ENDPOINT_FITS,
                      default="latent", options=OPTION)

    panel_defaults = {"steps": lambda s: s.steps, "as_shape_keys": lambda s: s.as_shape_keys,
                      "fit": lambda s: s.endpoint_fit, **look_defaults()}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if not super().poll(context):
            return False
        if len(selected_meshes(context)) != 2:
            cls.poll_message_set("Select exactly two mesh objects to interpolate between")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        self.fill_from_panel(context)
        objs = selected_meshes(context)
        if len(objs) != 2:
            return fail(self, f"Select exactly two mesh objects to interpolate between ({len(objs)} selected)")
        captured = self._capture(context, objs)
        if isinstance(captured, str):
            return fail(self, captured)
        a, b = captured
        steps, resolution, shape_keys = int(self.steps), int(self.resolution), bool(self.as_shape_keys)
        fit = str(self.fit)
        config, dest = launch_config(settings(context)), destination(context)
        step = max(gap(a.vertices), gap(b.vertices))
        lo = np.minimum(box_of(a.vertices)[0], box_of(b.vertices)[0])
        hi = np.maximum(box_of(a.vertices)[1], box_of(b.vertices)[1])
        a_lo, a_hi = box_of(a.vertices)
        start = np.array([(a_lo[0] + a_hi[0]) / 2.0, lo[1] - 0.6 * step - 0.1 * (hi[1] - lo[1]), lo[2]])
        look_for = look_of(self)
        surface = surface_params(self, patches=shape_keys)

        def work(task: jobs.Task, backend: Backend
                 ) -> tuple[dict[str, Any], list[Arrays], tuple[list[str], int], Any, list[dict[str, Any]]]:
            text = f"Interpolating {a.name} -> {b.name} in {steps} steps"
            task.advance(0.0, text + "...")
            client, info = backend.ensure_model(config)
            reply = jobs.call_fitting(task, client, "interpolate", {
                "mesh_a": encode_mesh(a.vertices, a.faces), "mesh_b": encode_mesh(b.vertices, b.faces),
                "steps": steps, "resolution": resolution, "fit": fit, **surface}, text=text)
            task.advance(1.0, "Adding the steps")
            return (info, decode_all(reply), surfaces_of(reply["meshes"]), template_uvs(client, info, resolution),
                    latent_fields(reply["meshes"]))

        def apply(result: tuple[dict[str, Any], list[Arrays], tuple[list[str], int], Any, list[dict[str, Any]]]
                  ) -> jobs.Steps:
            info, meshes, (surfaces, dropped), uvs, latents = result
            model = str(info.get("name", "model"))
            source = f"{a.name} -> {b.name}"
            standing_meshes = [(standing(v)[0], f) for v, f in meshes]
            bases = [standing(v)[1] for v, _f in meshes]
            count = 1 if shape_keys else len(meshes)
            boxes = [(box_of(v)[0] + start + [i * step, 0, 0], box_of(v)[1] + start + [i * step, 0, 0])
                     for i, (v, _f) in enumerate(standing_meshes[:count])]
            origin = start + free_shift(boxes, earlier_results(dest.scene, exclude={a.name, b.name}), step)
            if shape_keys:
                keys = [(f"Step {i} (t={i / max(1, len(meshes) - 1):.2f})", v) for i, (v, _f) in
                        enumerate(standing_meshes)]
                items = [NewObject(f"{a.name}_to_{b.name}", standing_meshes[0][0], standing_meshes[0][1],
                                   translation(origin), {"model": model, "source": source, "steps": len(meshes),
                                                         "surface": surfaces[0]}, shape_keys=keys)]
                name = None
            else:
                items = [NewObject(f"{a.name}_to_{b.name}_{i}", v, f, translation(origin + [i * step, 0.0, 0.0]),
                                   {"model": model, "source": source, "index": i, "t": i / max(1, len(meshes) - 1),
                                    "surface": surfaces[i], "resolution": resolution,
                                    **result_props(latents[i], config.model_path, shifted(-bases[i]),
                                                   surface["face_budget"])})
                         for i, (v, f) in enumerate(standing_meshes)]
                name = f"AtlasVAE Interpolation {a.name} to {b.name}"
            look = look_for(uvs)
            yield from build_objects(dest, items, "AtlasVAE: Interpolate", new_collection=name, look=look)
            keyed = " as shape keys" if shape_keys else ""
            return f"Interpolated {a.name} -> {b.name} in {len(meshes)} steps{keyed} with {model}{dropped_note(dropped)}"

        task = jobs.Task(self.kind, "Interpolate", work, apply)
        return dispatch(self, task, f"Interpolating {a.name} -> {b.name}...")


class ATLASVAE_OT_variations(LookOptions, _FromSelection):
    """Random variations of the active mesh, in a row beside it, each with its location, rotation and scale"""

    bl_idname = "atlasvae.variations"
    bl_label = "Variations"
    bl_options = {"REGISTER", "UNDO"}
    kind = "variations"

    count: IntProperty(name="Count", description="Number of variations", default=4, min=1, max=256, options=OPTION)
    spread: FloatProperty(name="Spread", description="How far variations stray from the original's code",
                          default=0.5, min=0.0, max=10.0, soft_max=2.0, options=OPTION)
    seed: IntProperty(name="Seed", description="Random seed for variations", default=0, min=0, options=OPTION)
    fit: EnumProperty(name="Fit", description="How the mesh is read: Latent optimises its code first, so the "
                      "variations centre on a closer match while staying the model's", items=ENDPOINT_FITS,
                      default="latent", options=OPTION)

    panel_defaults = {"count": lambda s: s.variation_count, "spread": lambda s: s.spread,
                      "seed": lambda s: s.variation_seed, "fit": lambda s: s.endpoint_fit,
                      **look_defaults()}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if not super().poll(context):
            return False
        obj = context.active_object
        if obj is None or obj.type != "MESH":
            cls.poll_message_set("Make a mesh object active to make variations of it")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        self.fill_from_panel(context)
        obj = context.active_object
        if obj is None or obj.type != "MESH":
            return fail(self, "Make a mesh object active to make variations of it")
        captured = self._capture(context, [obj])
        if isinstance(captured, str):
            return fail(self, captured)
        src = captured[0]
        params: dict[str, Any] = {"count": int(self.count), "spread": float(self.spread), "seed": int(self.seed),
                                  "resolution": int(self.resolution), "fit": str(self.fit), **surface_params(self)}
        config, dest = launch_config(settings(context)), destination(context)
        look_for = look_of(self)

        def work(task: jobs.Task, backend: Backend
                 ) -> tuple[dict[str, Any], list[Arrays], tuple[list[str], int], Any, list[dict[str, Any]]]:
            text = f"Making {params['count']} variations of {src.name}"
            task.advance(0.0, text + "...")
            client, info = backend.ensure_model(config)
            reply = jobs.call_fitting(task, client, "variations",
                                      {"mesh": encode_mesh(src.vertices, src.faces), **params}, text=text)
            task.advance(1.0, "Adding the variations")
            return (info, decode_all(reply), surfaces_of(reply["meshes"]),
                    template_uvs(client, info, int(params["resolution"])), latent_fields(reply["meshes"]))

        def apply(result: tuple[dict[str, Any], list[Arrays], tuple[list[str], int], Any, list[dict[str, Any]]]
                  ) -> jobs.Steps:
            info, meshes, (surfaces, dropped), uvs, latents = result
            model = str(info.get("name", "model"))
            step = max([gap(src.vertices)] + [beside(src.vertices, v) for v, _f in meshes])
            boxes = [(box_of(v)[0] + [(i + 1) * step, 0, 0], box_of(v)[1] + [(i + 1) * step, 0, 0])
                     for i, (v, _f) in enumerate(meshes)]
            obstacles = earlier_results(dest.scene, exclude={src.name}) + [box_of(src.vertices)]
            shift = free_shift(boxes, obstacles, step)
            items = []
            for i, (vertices, faces) in enumerate(meshes):
                local, matrix = _in_frame_of(src, vertices, shift + [(i + 1) * step, 0.0, 0.0])
                items.append(NewObject(f"{src.name}_var{i}", local, faces, matrix,
                                       {"model": model, "source": src.name, "index": i, "seed": params["seed"],
                                        "spread": params["spread"], "surface": surfaces[i],
                                        "resolution": params["resolution"],
                                        **result_props(latents[i], config.model_path, _frame_of(src, vertices),
                                                     params["face_budget"])}))
            look = look_for(uvs)
            yield from build_objects(dest, items, "AtlasVAE: Variations",
                                     new_collection=f"AtlasVAE Variations {src.name}", look=look)
            return f"Made {len(meshes)} variations of {src.name} with {model}{dropped_note(dropped)}"

        task = jobs.Task(self.kind, "Variations", work, apply)
        return dispatch(self, task, f"Making variations of {src.name}...")


CLASSES = (ATLASVAE_OT_reconstruct, ATLASVAE_OT_interpolate, ATLASVAE_OT_variations)
