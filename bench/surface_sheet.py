"""A sheet of sampled shapes, each as the model's raw patches beside the backend's closed surface, rendered
in Blender (bpy, Workbench) so it shows what lands in the scene (issue 27).

    python -m bench.surface_sheet --out docs/surface_sheet.png --labels chair,table,car,aircraft,building,tree

One row per label, `--count` samples per row (seeds 0, 1, ...), each sample as a pair: the decoded patches
(blue) and the closed mesh (orange, backend/surface.py at the default face budget), every pair scaled to the
same height and standing on the floor. Z is up, as in the corpus and Blender.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from backend.data.meshio import Mesh
from backend.limits import DEFAULT_FACE_BUDGET

PATCH_COLOR = (0.42, 0.58, 0.85, 1.0)
CLOSED_COLOR = (0.88, 0.56, 0.32, 1.0)
CELL = 1.4  # patches to closed surface of one sample, in units of a shape's size
PAIR = 3.3  # one sample to the next
ROW = 1.7


def pairs(model: Path, labels: list[str], count: int, seed: int, budget: int
          ) -> list[tuple[str, list[tuple[Mesh, ...]]]]:
    """For each label, `count` samples as (raw patches, closed surface) in the unit ball."""
    from backend.serving.service import ModelService
    from backend.surface import closed_surface

    service = ModelService("cpu")
    service.load(model)
    rows = []
    for label in labels:
        row = []
        for mesh in service.sample(count, seed=seed, label=label, surface="patches"):
            closed = closed_surface(mesh.vertices, mesh.faces, budget)
            row.append((Mesh(mesh.vertices, mesh.faces), Mesh(closed.vertices, closed.faces)))
        rows.append((label, row))
    return rows


def render(rows: list[tuple[str, list[tuple[Mesh, ...]]]], path: Path, width: int = 2400,
           colors: tuple[tuple[float, float, float, float], ...] = (PATCH_COLOR, CLOSED_COLOR),
           sharp: tuple[bool, ...] = (False, True), cell: float = CELL, gap: float = PAIR, row_gap: float = ROW,
           reference: int = 0, captions: list[list[str]] | None = None) -> None:
    """The sheet: rows top to bottom, cells left to right, a caption per row, rendered to `path`.

    Each cell's meshes stand side by side `cell` apart (cells `gap` apart, rows `row_gap`), mesh k in
    `colors[k]` with sharp edges over 40 degrees where `sharp[k]`, all of a cell scaled alike so that mesh
    `reference` is one unit tall or wide (a cell then shows size changes); `captions[r][c]` goes under cell c of
    row r."""
    import bpy
    from mathutils import Vector

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    columns = max(len(cells) * len(cells[0]) for _label, cells in rows if cells)
    for r, (label, row) in enumerate(rows):
        z = -r * row_gap
        for c, meshes in enumerate(row):
            lo, hi = meshes[reference].vertices.min(axis=0), meshes[reference].vertices.max(axis=0)
            scale = 1.0 / float((hi - lo).max())
            base = np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, lo[2]])
            for k, mesh in enumerate(meshes):
                name = f"{label}_{c}_{k}"
                data = bpy.data.meshes.new(name)
                data.from_pydata(((mesh.vertices - base) * scale).tolist(), [], mesh.faces.tolist())
                data.shade_smooth()
                if sharp[k]:
                    data.set_sharp_from_angle(angle=np.radians(40))
                obj = bpy.data.objects.new(name, data)
                obj.location = (c * gap + k * cell, 0.0, z)
                obj.rotation_euler = (0.0, 0.0, np.radians(-35))  # a three-quarter view from the front
                obj.color = colors[k]
                scene.collection.objects.link(obj)
            if captions is not None:
                note = bpy.data.curves.new(f"caption {label} {c}", type="FONT")
                note.body = captions[r][c]
                note.size = 0.22
                note.align_x = "CENTER"
                text = bpy.data.objects.new(f"caption {label} {c}", note)
                text.location = (c * gap + (len(meshes) - 1) * cell / 2, 0.0, z - 0.4)
                text.rotation_euler = (np.pi / 2, 0.0, 0.0)
                text.color = (0.1, 0.1, 0.1, 1.0)
                scene.collection.objects.link(text)
        caption = bpy.data.curves.new(f"caption {label}", type="FONT")
        caption.body = label
        caption.size = 0.45
        caption.align_x = "RIGHT"
        text = bpy.data.objects.new(f"caption {label}", caption)
        text.location = (-0.9, 0.0, z + 0.35)
        text.rotation_euler = (np.pi / 2, 0.0, 0.0)
        text.color = (0.1, 0.1, 0.1, 1.0)
        scene.collection.objects.link(text)
    bpy.context.view_layer.update()  # bounding boxes and matrices of the new objects
    corners = [o.matrix_world @ Vector(c) for o in scene.objects for c in o.bound_box]
    lo = Vector((min(c.x for c in corners), min(c.y for c in corners), min(c.z for c in corners)))
    hi = Vector((max(c.x for c in corners), max(c.y for c in corners), max(c.z for c in corners)))
    centre = (lo + hi) / 2
    camera = bpy.data.objects.new("camera", bpy.data.cameras.new("camera"))
    scene.collection.objects.link(camera)
    direction = Vector((0.0, -1.0, 0.4)).normalized()
    camera.location = centre + direction * 60.0
    camera.rotation_euler = (centre - camera.location).to_track_quat("-Z", "Y").to_euler()
    camera.data.type = "ORTHO"
    aspect = (hi.z - lo.z + 1.0) / (hi.x - lo.x + 0.6)
    camera.data.ortho_scale = (hi.x - lo.x) * 1.04
    scene.camera = camera
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.display.shading.light = "STUDIO"
    scene.display.shading.color_type = "OBJECT"
    scene.display.shading.show_cavity = True
    scene.render.resolution_x = width
    scene.render.resolution_y = int(width * aspect * 1.02)
    scene.render.film_transparent = False
    scene.render.filepath = str(path.resolve())
    path.parent.mkdir(parents=True, exist_ok=True)
    bpy.ops.render.render(write_still=True)
    print(f"wrote {path} ({columns} columns x {len(rows)} rows)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path(__file__).resolve().parent.parent / "models" / "base")
    parser.add_argument("--labels", default="chair,table,car,aircraft,building,tree")
    parser.add_argument("--count", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--face-budget", type=int, default=DEFAULT_FACE_BUDGET)
    parser.add_argument("--width", type=int, default=2400)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    render(pairs(args.model, args.labels.split(","), args.count, args.seed, args.face_budget), args.out, args.width)
    return 0


if __name__ == "__main__":
    sys.exit(main())
