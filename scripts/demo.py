"""The end-to-end demo: headless Blender (the bpy module) with the AtlasVAE add-on enabled.

The add-on starts the real backend subprocess, samples shapes of several real-object categories (one row
per category, standing on a floor), reconstructs Blender's monkey and a real chair the model never saw
(scripts/demo_assets/) beside their originals (each result keeps its source's transform), then saves
out/demo.blend and renders out/demo.png.
Blender's user folders point into the output folder, so the user's own Blender settings are never touched.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REAL_CHAIR = REPO / "scripts" / "demo_assets" / "chair2.obj"
# Categories of the bundled base model shown one row each, in this order (those the model has a prior for).
CATEGORIES = ("chair", "table", "car", "aircraft", "building", "tree")


def isolate_blender_user_dirs(out: Path) -> None:
    """Blender reads these before bpy is imported: keep its config out of the user's home."""
    for var, sub in (("BLENDER_USER_CONFIG", "config"), ("BLENDER_USER_SCRIPTS", "scripts"),
                     ("BLENDER_USER_EXTENSIONS", "extensions"), ("BLENDER_USER_DATAFILES", "datafiles")):
        os.environ.setdefault(var, str(out / "blender_user" / sub))


def run_operator(op, label: str, **options) -> None:  # type: ignore[no-untyped-def]
    """Call a bpy operator with its options and fail loudly, with the add-on's report, when it does not finish."""
    import bpy

    started = time.perf_counter()
    result = op(**options)
    runtime = bpy.context.window_manager.atlasvae_runtime
    print(f"  {label}: {runtime.last_report} ({time.perf_counter() - started:.1f} s)")
    if result != {"FINISHED"}:
        raise SystemExit(f"demo failed at '{label}': {runtime.last_report}")


def stand_on_floor(obj) -> None:  # type: ignore[no-untyped-def]
    """Lift or lower `obj` so its lowest point touches z = 0."""
    import bpy
    from mathutils import Vector

    bpy.context.view_layer.update()
    lowest = min((obj.matrix_world @ Vector(c)).z for c in obj.bound_box)
    obj.location.z -= lowest


def add_floor(scene, objects) -> None:  # type: ignore[no-untyped-def]
    """A light plane at z = 0 under `objects`, with a margin."""
    import bpy
    from mathutils import Vector

    corners = [o.matrix_world @ Vector(c) for o in objects for c in o.bound_box]
    lo = Vector((min(c.x for c in corners), min(c.y for c in corners), 0.0))
    hi = Vector((max(c.x for c in corners), max(c.y for c in corners), 0.0))
    size = max(hi.x - lo.x, hi.y - lo.y) + 12.0
    bpy.ops.mesh.primitive_plane_add(size=size, location=(lo + hi) / 2)
    floor = bpy.context.active_object
    floor.name = "Floor"
    floor.color = (0.85, 0.85, 0.82, 1.0)


def frame_camera(scene, objects) -> None:  # type: ignore[no-untyped-def]
    """An orthographic camera on the bounding box of `objects`, from the front-right, and a sun light."""
    import bpy
    from mathutils import Vector

    corners = [o.matrix_world @ Vector(c) for o in objects for c in o.bound_box]
    lo = Vector((min(c.x for c in corners), min(c.y for c in corners), min(c.z for c in corners)))
    hi = Vector((max(c.x for c in corners), max(c.y for c in corners), max(c.z for c in corners)))
    center, size = (lo + hi) / 2, max((hi - lo).length, 1.0)
    cam = bpy.data.objects.new("DemoCamera", bpy.data.cameras.new("DemoCamera"))
    scene.collection.objects.link(cam)
    cam.location = center + Vector((0.25, -1.0, 0.75)).normalized() * size * 2.0
    cam.data.type = "ORTHO"
    cam.data.ortho_scale = size * 1.15
    cam.rotation_euler = (center - cam.location).to_track_quat("-Z", "Y").to_euler()
    scene.camera = cam
    sun = bpy.data.objects.new("DemoSun", bpy.data.lights.new("DemoSun", type="SUN"))
    sun.rotation_euler = (0.7, 0.2, 0.6)
    scene.collection.objects.link(sun)


def demo_categories(model_labels: list[str], wanted: tuple[str, ...] = CATEGORIES) -> list[str]:
    """The wanted categories the model can sample by label; an error names the model's labels when none match."""
    chosen = [c for c in wanted if c in model_labels]
    if not chosen:
        raise SystemExit(f"the chosen model has none of the demo's categories {list(wanted)}; "
                         f"its labels are {model_labels or 'none'}")
    return chosen


def add_caption(scene, text: str, location: tuple[float, float, float]):  # type: ignore[no-untyped-def]
    """A flat text object on the floor naming a row, so the render says what each row is."""
    import bpy

    curve = bpy.data.curves.new(f"Caption {text}", type="FONT")
    curve.body = text
    curve.size = 0.6
    curve.align_x = "RIGHT"
    caption = bpy.data.objects.new(f"Caption {text}", curve)
    caption.location = location
    caption.color = (0.15, 0.15, 0.15, 1.0)
    scene.collection.objects.link(caption)
    return caption


def import_real_chair(location: tuple[float, float, float], height: float):  # type: ignore[no-untyped-def]
    """The demo's real chair (Z up in the file), scaled to `height` Blender units and placed at `location`."""
    import bpy

    bpy.ops.wm.obj_import(filepath=str(REAL_CHAIR), forward_axis="Y", up_axis="Z")
    chair = bpy.context.selected_objects[0]
    bpy.context.view_layer.update()
    chair.scale = [height / max(chair.dimensions)] * 3
    chair.location = location
    chair.name = "Real chair (test split)"
    return chair


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO / "out")
    parser.add_argument("--count", type=int, default=3, help="samples per category")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    isolate_blender_user_dirs(out)
    os.environ.setdefault("ATLASVAE_PYTHON", sys.executable)
    sys.path.insert(0, str(REPO))

    import bpy  # noqa: F401  (importing bpy first puts addon_utils on the path)
    import addon_utils

    from blender_addon.bpyfree.locate import config_labels

    bpy.ops.wm.read_factory_settings(use_empty=True)
    addon_utils.enable("blender_addon", default_set=True, handle_error=None)
    scene = bpy.context.scene
    print(f"AtlasVAE demo: model '{scene.atlasvae.model}', backend Python {os.environ['ATLASVAE_PYTHON']}")

    samples = []
    model_path = scene.atlasvae.model_path()
    labels = config_labels(Path(model_path)) if model_path is not None else []
    for row, category in enumerate(demo_categories(labels)):
        scene.cursor.location = (-1.0, 1.5 + 3.0 * row, 0.0)
        # unit size: the gallery's grid of equal cells (at real size an aircraft is 10 m, a bottle 16 cm)
        run_operator(bpy.ops.atlasvae.sample, f"sample {args.count} {category} shapes", count=args.count,
                     seed=args.seed, spacing=2.8, family=category, size="unit")
        batch = sorted(bpy.context.selected_objects, key=lambda o: o.name)
        for column, obj in enumerate(batch):
            obj.location.x, obj.location.y = -1.0 + 2.8 * column, 1.5 + 3.0 * row
        samples += batch
        add_caption(scene, category, (-2.6, 1.2 + 3.0 * row, 0.01))

    chair = import_real_chair((-3.0, -3.0, 0.0), height=2.5)
    bpy.ops.mesh.primitive_monkey_add(location=(1.5, -3.0, 0.0), rotation=(0.0, 0.0, 0.4))
    monkey = bpy.context.active_object
    for obj in (chair, monkey):
        stand_on_floor(obj)
    bpy.ops.object.select_all(action="DESELECT")
    for obj in (chair, monkey):
        obj.select_set(True)
    bpy.context.view_layer.objects.active = monkey
    run_operator(bpy.ops.atlasvae.reconstruct, "reconstruct the monkey and a real chair")
    reconstructions = list(bpy.context.selected_objects)
    add_caption(scene, "real chair, monkey | reconstructions", (-4.6, -5.6, 0.01)).data.align_x = "LEFT"

    meshes = [o for o in scene.objects if o.type in ("MESH", "FONT")]
    for i, obj in enumerate(samples):
        obj.color = (0.35 + 0.5 * (i % 3) / 2, 0.55, 0.85 - 0.4 * (i % 4) / 3, 1.0)
    for obj in (chair, monkey):
        obj.color = (0.55, 0.6, 0.68, 1.0)
    for obj in reconstructions:
        obj.color = (0.9, 0.55, 0.3, 1.0)
    add_floor(scene, meshes)
    frame_camera(scene, meshes)
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.display.shading.light = "STUDIO"
    scene.display.shading.color_type = "OBJECT"
    scene.display.shading.show_cavity = True
    scene.display.shading.show_shadows = True
    scene.render.resolution_x, scene.render.resolution_y = 1280, 720
    scene.render.filepath = str(out / "demo.png")
    bpy.ops.render.render(write_still=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(out / "demo.blend"))
    addon_utils.disable("blender_addon", default_set=True)
    print(f"\nWrote {out / 'demo.png'} ({len(meshes)} meshes) and {out / 'demo.blend'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
