# mypy: disable-error-code="valid-type"
"""Sample Shapes: new shapes from the model's prior (or one family's), standing on a grid at the 3D cursor.

Its options (F9, Shift+R and scripts use them) default to the sidebar's last values; it asks the
backend off the main thread (interactive Blender) and builds the results with building.build_objects,
one undo step per action.
"""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING, Any

import bpy
import numpy as np
from bpy.props import EnumProperty, FloatProperty, IntProperty

from .. import jobs
from ..bpyfree.backend_process import Backend
from ..bpyfree.explorer import latent_fields, result_props, shifted
from ..bpyfree.layout import Box, box_of, free_shift, grid_pitch, standing, translation
from ..bpyfree.uvs import template_uvs
from ..properties import ANY_FAMILY, SIZE_DESCRIPTION, SIZE_MODES, family_items, settings
from .building import (
    Arrays, LookOptions, NewObject, build_objects, decode_all, destination, dropped_note, earlier_results, look_of,
    look_defaults, surface_params, surfaces_of,
)
from .common import OPTION, ModelOperator, dispatch, launch_config

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems


def _family_items(self: Any, context: bpy.types.Context | None) -> list[tuple[str, str, str, int]]:
    """The Family option's items: Any plus the labels of the scene's chosen model."""
    ctx = context if context is not None else bpy.context
    if ctx.scene is None or not hasattr(ctx.scene, "atlasvae"):
        return [(ANY_FAMILY, "Any", "Sample from the model's whole prior, any family", 0)]
    return family_items(settings(ctx), ctx)


class ATLASVAE_OT_sample(LookOptions, ModelOperator):
    """Sample new shapes from the model into a new collection, standing on a grid at the 3D cursor"""

    bl_idname = "atlasvae.sample"
    bl_label = "Sample Shapes"
    bl_options = {"REGISTER", "UNDO"}
    kind = "sample"

    count: IntProperty(name="Count", description="Number of shapes to sample", default=4, min=1, max=256,
                       soft_max=64, options=OPTION)
    seed: IntProperty(name="Seed", description="Random seed: the same seed and model give the same shapes",
                      default=0, min=0, options=OPTION)
    temperature: FloatProperty(name="Temperature", description="Spread of the latent samples: lower is closer "
                               "to the average shape", default=1.0, min=0.0, max=10.0, soft_max=2.0, options=OPTION)
    family: EnumProperty(name="Family", description="Shape family to sample from; Any samples the whole model",
                         items=_family_items, options=OPTION)
    size: EnumProperty(name="Size", description=SIZE_DESCRIPTION, items=SIZE_MODES, default="real", options=OPTION)
    spacing: FloatProperty(name="Spacing", description="Distance between shapes on the grid (more when the widest "
                           "shape needs it, so big shapes never overlap)", default=2.5, min=0.0, subtype="DISTANCE",
                           options=OPTION)

    panel_defaults = {"count": lambda s: s.count, "seed": lambda s: s.seed, "temperature": lambda s: s.temperature,
                      "family": lambda s: s.sample_label() or ANY_FAMILY, "size": lambda s: s.size,
                      "spacing": lambda s: s.spacing,
                      **look_defaults()}

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        seed_given = self.properties.is_property_set("seed")
        self.fill_from_panel(context)
        s = settings(context)
        if s.random_seed and not seed_given:
            self.seed = random.randrange(0, 2**31 - 1)
            s.seed = self.seed
        seed, count, temperature = int(self.seed), int(self.count), float(self.temperature)
        resolution, spacing, size = int(self.resolution), float(self.spacing), str(self.size)
        label = None if self.family == ANY_FAMILY else str(self.family)
        config, dest = launch_config(s), destination(context)
        cursor = np.array(context.scene.cursor.location, dtype=np.float64)  # type: ignore[union-attr]
        params: dict[str, Any] = {"count": count, "seed": seed, "temperature": temperature, "resolution": resolution,
                                  "size": size, **surface_params(self)}
        if label is not None:
            params["label"] = label
        noun = "shape" if count == 1 else "shapes"
        what = f"{label} {noun}" if label is not None else noun
        look_for = look_of(self)

        def work(task: jobs.Task, backend: Backend
                 ) -> tuple[dict[str, Any], list[Arrays], tuple[list[str], int], Any, str, list[dict[str, Any]]]:
            task.advance(0.0, f"Sampling {count} {what}...")
            client, info = backend.ensure_model(config)
            reply = client.call("sample", params)
            task.advance(1.0, f"Adding {count} {what}")
            return (info, decode_all(reply), surfaces_of(reply["meshes"]), template_uvs(client, info, resolution),
                    str(reply.get("size", "unit")), latent_fields(reply["meshes"]))

        def apply(result: tuple[dict[str, Any], list[Arrays], tuple[list[str], int], Any, str, list[dict[str, Any]]]
                  ) -> jobs.Steps:
            info, meshes, (surfaces, dropped), uvs, got_size, latents = result
            model = str(info.get("name", "model"))
            columns = max(1, math.ceil(math.sqrt(len(meshes))))
            pitch = grid_pitch([vertices for vertices, _faces in meshes], spacing)
            props: dict[str, Any] = {"model": model, "seed": seed, "temperature": temperature, "resolution": resolution,
                                     "size": got_size}
            if label is not None:
                props["label"] = label
            placed: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
            boxes: list[Box] = []
            for i, (vertices, faces) in enumerate(meshes):
                row, col = divmod(i, columns)
                local, base = standing(vertices)
                location = cursor + np.array([col * pitch, row * pitch, 0.0])
                lo, hi = box_of(local)
                boxes.append((lo + location, hi + location))
                placed.append((local, faces, location, base))
            shift = free_shift(boxes, earlier_results(dest.scene), pitch or 1.0, margin=0.1 * (pitch or 1.0))
            items = [NewObject(f"{model}_s{seed}_{i}", local, faces, translation(location + shift),
                               {**props, "index": i, "surface": surfaces[i],
                                **result_props(latents[i], config.model_path, shifted(-base), params["face_budget"])})
                     for i, (local, faces, location, base) in enumerate(placed)]
            family = f" {label}" if label is not None else ""
            look = look_for(uvs)
            collection = yield from build_objects(dest, items, "AtlasVAE: Sample Shapes",
                                                  new_collection=f"AtlasVAE Samples {model}{family} seed {seed}",
                                                  look=look)
            unit = " at unit size (the model records no real sizes)" if got_size != size else ""
            return (f"Sampled {len(meshes)} {what} from {model} (seed {seed}){unit} into '{collection}'"
                    f"{dropped_note(dropped)}")

        task = jobs.Task(self.kind, "Sample Shapes", work, apply, reuse=bool(self.options.is_repeat),
                         content=(config.model_path, tuple(sorted(params.items()))))
        return dispatch(self, task, f"Sampling {count} {what} (seed {seed})...")


CLASSES = (ATLASVAE_OT_sample,)
