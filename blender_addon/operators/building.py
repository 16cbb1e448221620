# mypy: disable-error-code="valid-type"
"""Scene building: turning decoded meshes into Blender objects the way Blender's own Add menu does.

Results go into the collection that was active when the operator ran (or a new child collection
there), stand on their base (origin at the bottom centre), are laid out beside earlier AtlasVAE
results rather than on top of them, and end up selected with the last one active. A build adds one
object per step (see jobs.Steps) and is rolled back completely if it cannot finish. The generation
operators also take from here what they share on the way: decoding a reply's meshes and their look options,
Surface included (the backend's closed mesh or the decoded patches, asked for in each request).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import math

import bpy
import numpy as np
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty
from mathutils import Matrix

from .. import jobs
from ..bpyfree.wire import decode_mesh
from ..mesh_convert import arrays_to_mesh, object_triangles
from ..properties import (
    DEFAULT_FACE_BUDGET, DEFAULT_SURFACE, FACE_BUDGET_DESCRIPTION, MAX_FACE_BUDGET, MIN_FACE_BUDGET, SHADING,
    SURFACE_DESCRIPTION, SURFACES, AtlasVAESettings,
)
from .common import OPTION

MIN_GAP = 1.0
MATERIAL_NAME = "AtlasVAE Shape"
MATERIAL_COLOR = (0.72, 0.52, 0.38, 1.0)
RESULT_KEY = "atlasvae_model"  # custom property every result carries (with the model's name)
MAX_SHIFTS = 1000
SHARP_ANGLE = math.radians(40)  # a closed mesh shades smooth except across edges sharper than this

Arrays = tuple[np.ndarray, np.ndarray]  # (vertices, faces) of one decoded mesh
IdRef = tuple[str, int]  # (name, session_uid): finds a datablock again between timer calls
Box = tuple[np.ndarray, np.ndarray]  # axis-aligned (min, max) corners in world space


@dataclass(frozen=True)
class Destination:
    """Where results go, captured on the main thread when the operator runs."""

    scene: str
    view_layer: str
    collection: IdRef | None  # the active collection; None means the scene's own collection


@dataclass(frozen=True)
class Look:
    """How new meshes look: shading, the shared material, and per-corner UVs from the template."""

    smooth: bool = True
    material: bool = True
    uvs: np.ndarray | None = None  # (corners, 2) float32, for patch results whose corner count matches


@dataclass
class NewObject:
    """One result object: name, mesh arrays in object space, its 4x4 world matrix, custom properties
    (stored as atlasvae_<key>) and optional shape keys (name, object-space vertices)."""

    name: str
    vertices: np.ndarray
    faces: np.ndarray
    matrix: np.ndarray
    props: dict[str, Any]
    shape_keys: list[tuple[str, np.ndarray]] = field(default_factory=list)


@dataclass
class Source:
    """A selected object captured on the main thread: name, world matrix and world-space triangles."""

    name: str
    matrix: np.ndarray
    vertices: np.ndarray
    faces: np.ndarray


def capture(context: bpy.types.Context, obj: bpy.types.Object) -> Source:
    """World-space triangles of `obj` (modifiers applied) and its world matrix."""
    depsgraph = context.evaluated_depsgraph_get()
    vertices, faces = object_triangles(obj, depsgraph)
    return Source(obj.name, np.array(obj.matrix_world, dtype=np.float64), vertices, faces)


def destination(context: bpy.types.Context) -> Destination:
    """The scene, view layer and active collection of `context`."""
    scene, view_layer = context.scene, context.view_layer
    if scene is None or view_layer is None:
        raise RuntimeError("AtlasVAE needs a scene and a view layer to add results to")
    layer_collection = view_layer.active_layer_collection
    active = layer_collection.collection if layer_collection is not None else scene.collection
    ref = None if active == scene.collection else (active.name, active.session_uid)
    return Destination(scene.name, view_layer.name, ref)


class LookOptions:
    """Mixin for the generation operators: the options for how results look (vertices, shading, material,
    Surface and its face budget), declared once for all of them."""

    resolution: IntProperty(name="Vertices", description="Vertex count of each result (snapped to the template)",
                            default=2562, min=12, max=200_000, options=OPTION)
    shading: EnumProperty(name="Shading", items=SHADING, default="SMOOTH", options=OPTION)
    material: BoolProperty(name="Material", description="Give the results the shared AtlasVAE material",
                           default=True, options=OPTION)
    surface: EnumProperty(name="Surface", description=SURFACE_DESCRIPTION, items=SURFACES, default=DEFAULT_SURFACE,
                          options=OPTION)
    face_budget: IntProperty(name="Face Budget", description=FACE_BUDGET_DESCRIPTION, default=DEFAULT_FACE_BUDGET,
                             min=MIN_FACE_BUDGET, max=MAX_FACE_BUDGET, soft_max=100_000, options=OPTION)


def surface_params(op: Any, patches: bool = False) -> dict[str, Any]:
    """The request params for the operator's Surface and Face Budget; `patches` asks for the decoded patches
    whatever the option says (shape keys need every step's vertices in the same order)."""
    return {"surface": "patches" if patches else str(op.surface), "face_budget": int(op.face_budget)}


def surfaces_of(meshes: list[dict[str, Any]]) -> tuple[list[str], int]:
    """Which surface each reply mesh is ("closed" or "patches") and how many stray pieces closing them dropped."""
    return ([str(m.get("surface", "patches")) for m in meshes],
            sum(int(m.get("pieces_dropped", 0)) for m in meshes))


def dropped_note(dropped: int) -> str:
    """The report's note on stray pieces the backend left out of closed meshes ("" when none)."""
    return f"; {dropped} stray piece{'s' if dropped != 1 else ''} left out of the closed meshes" if dropped else ""


def look_of(op: Any) -> Any:
    """A function (template UVs or None) -> Look, from the operator's shading and material options, read now on
    the main thread (the result is applied later)."""
    smooth, material = op.shading == "SMOOTH", bool(op.material)
    return lambda uvs: Look(smooth=smooth, material=material, uvs=uvs)


def look_defaults() -> dict[str, Any]:
    """Panel defaults of LookOptions, the look options every generation operator has."""
    return {"resolution": AtlasVAESettings.resolution, "shading": lambda s: s.shading,
            "material": lambda s: s.add_material,
            "surface": lambda s: s.surface, "face_budget": lambda s: s.face_budget}


def decode_all(reply: dict[str, Any]) -> list[Arrays]:
    """Every mesh of a reply with "meshes", as arrays."""
    return [decode_mesh(m) for m in reply["meshes"]]


def translation(offset: np.ndarray) -> np.ndarray:
    """A 4x4 matrix that moves by `offset`."""
    m = np.eye(4)
    m[:3, 3] = offset
    return m


def box_of(vertices: np.ndarray) -> Box:
    """Axis-aligned (min, max) corners of (V, 3) points."""
    pts = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    return pts.min(axis=0), pts.max(axis=0)


def standing(vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(vertices relative to their base point, base point): the base point is the bottom centre of the
    bounding box, so an object whose origin is there stands on the plane its origin is on."""
    lo, hi = box_of(vertices)
    base = np.array([(lo[0] + hi[0]) / 2.0, (lo[1] + hi[1]) / 2.0, lo[2]])
    return vertices - base, base


def gap(vertices: np.ndarray) -> float:
    """How far apart to put copies of a shape side by side along X: its width plus a fifth."""
    lo, hi = box_of(vertices)
    width = float(hi[0] - lo[0])
    return width * 1.2 if width > 1e-4 else MIN_GAP


def grid_pitch(shapes: list[np.ndarray], spacing: float) -> float:
    """Distance between neighbouring cells of a grid of `shapes`: `spacing`, or the widest shape's footprint
    (x or y) and a tenth when that is more, so shapes at real size (a building beside a chair) never overlap."""
    widest = max((float(max(hi[0] - lo[0], hi[1] - lo[1])) for lo, hi in map(box_of, shapes)), default=0.0)
    return max(spacing, widest * 1.1)


def beside(source: np.ndarray, result: np.ndarray) -> float:
    """How far along +X to move `result` (in the source's place) so it stands clear beside `source`:
    the source's width and a fifth, or more when the result reaches further than the source."""
    src_lo, src_hi = box_of(source)
    res_lo, _res_hi = box_of(result)
    width = float(src_hi[0] - src_lo[0])
    return max(gap(source), float(src_hi[0] - res_lo[0]) + 0.1 * max(width, MIN_GAP))


def world_matrix(obj: bpy.types.Object) -> np.ndarray:
    """The object's world matrix composed from its location, rotation and scale (and its parents'), not
    read from matrix_world, which Blender updates only when the scene is next evaluated: a result added by
    the timer, or an object a script just moved, would still be placed where it was."""
    m = np.array(obj.matrix_basis, dtype=np.float64)
    if obj.parent is not None:
        m = world_matrix(obj.parent) @ np.array(obj.matrix_parent_inverse, dtype=np.float64) @ m
    return m


def world_box(obj: bpy.types.Object) -> Box:
    """World-space bounding box of an object: the corners of its mesh's own box (bound_box is empty until
    Blender evaluates a new object) through world_matrix; other objects use their bound_box corners."""
    if isinstance(obj.data, bpy.types.Mesh) and len(obj.data.vertices):
        co = np.empty(len(obj.data.vertices) * 3, dtype=np.float64)
        obj.data.vertices.foreach_get("co", co)
        lo, hi = box_of(co)
        corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    else:
        corners = np.array([tuple(c) for c in obj.bound_box], dtype=np.float64)
    m = world_matrix(obj)
    return box_of(corners @ m[:3, :3].T + m[:3, 3])


def earlier_results(scene_name: str, exclude: set[str] = frozenset()) -> list[Box]:  # type: ignore[assignment]
    """World boxes of the AtlasVAE results already in the scene (not those named in `exclude`)."""
    scene = bpy.data.scenes.get(scene_name)
    if scene is None:
        return []
    return [world_box(o) for o in scene.objects if RESULT_KEY in o and o.name not in exclude]


def _overlap(a: Box, b: Box, margin: float) -> bool:
    return bool(np.all(a[0] < b[1] + margin) and np.all(b[0] < a[1] + margin))


def free_shift(boxes: list[Box], obstacles: list[Box], step: float, margin: float = 0.0) -> np.ndarray:
    """The smallest move k * step along +X (k = 0, 1, ...) after which none of `boxes` overlaps any of
    `obstacles` (with `margin` between them), so a new batch lands beside earlier ones."""
    step = max(step, MIN_GAP * 0.1)
    for k in range(MAX_SHIFTS):
        shift = np.array([k * step, 0.0, 0.0])
        moved = [(lo + shift, hi + shift) for lo, hi in boxes]
        if not any(_overlap(b, o, margin) for b in moved for o in obstacles):
            return shift
    return np.array([MAX_SHIFTS * step, 0.0, 0.0])


def _find(ids: Any, ref: IdRef) -> Any:
    """The datablock `ref` names if it still exists and is the same one (not a namesake after undo)."""
    found = ids.get(ref[0])
    return found if found is not None and found.session_uid == ref[1] else None


def _parent_collection(dest: Destination) -> bpy.types.Collection:
    scene = bpy.data.scenes.get(dest.scene)
    if scene is None:
        raise RuntimeError(f"scene '{dest.scene}' was removed before the results arrived")
    if dest.collection is None:
        return scene.collection
    found = _find(bpy.data.collections, dest.collection)
    if found is None:
        raise RuntimeError(f"collection '{dest.collection[0]}' was removed (undo or another file loaded) "
                           "before the results arrived")
    return found


def shared_material() -> bpy.types.Material:
    """The one material every AtlasVAE result can share (made on first use; an artist may edit it)."""
    material = bpy.data.materials.get(MATERIAL_NAME)
    if material is None:
        material = bpy.data.materials.new(MATERIAL_NAME)
        material.diffuse_color = MATERIAL_COLOR  # type: ignore[assignment]
        material.roughness = 0.6
        tree = material.node_tree  # Blender 5 gives every new material a Principled BSDF node tree
        bsdf = tree.nodes.get("Principled BSDF") if tree is not None else None
        if bsdf is not None:
            bsdf.inputs["Base Color"].default_value = MATERIAL_COLOR
            bsdf.inputs["Roughness"].default_value = 0.6
    return material


def _add_object(collection: bpy.types.Collection, item: NewObject, look: Look) -> bpy.types.Object:
    mesh = arrays_to_mesh(item.name, item.vertices, item.faces)
    obj: bpy.types.Object | None = None
    try:
        closed = item.props.get("surface") == "closed"
        if not look.smooth:
            mesh.shade_flat()
        elif closed:  # smooth, but a closed mesh's corners (a building's, a table top's rim) stay crisp
            mesh.set_sharp_from_angle(angle=SHARP_ANGLE)
        if look.uvs is not None and not closed and len(look.uvs) == len(mesh.loops):
            layer = mesh.uv_layers.new(name="UVMap")
            assert layer is not None
            layer.data.foreach_set("uv", np.ascontiguousarray(look.uvs, dtype=np.float32).ravel())
        if look.material:
            mesh.materials.append(shared_material())
        obj = bpy.data.objects.new(item.name, mesh)
        obj.matrix_world = Matrix(item.matrix.tolist())
        for key, value in item.props.items():
            obj[f"atlasvae_{key}"] = value
        collection.objects.link(obj)
        if item.shape_keys:
            obj.shape_key_add(name="Basis", from_mix=False)
            for key_name, vertices in item.shape_keys:
                shape = obj.shape_key_add(name=key_name, from_mix=False)
                shape.data.foreach_set("co", np.ascontiguousarray(vertices, dtype=np.float32).ravel())
        return obj
    except BaseException:
        # Not yet recorded for the build's rollback: remove what this step made before the error goes on.
        if obj is not None:
            bpy.data.objects.remove(obj)
        if mesh.users == 0:
            bpy.data.meshes.remove(mesh)
        raise


def _remove_built(objects: list[IdRef], collection: IdRef | None) -> None:
    """Delete the objects (and their meshes) and the collection an unfinished build made."""
    for ref in reversed(objects):
        obj = _find(bpy.data.objects, ref)
        if obj is None:
            continue
        mesh = obj.data
        bpy.data.objects.remove(obj)
        if isinstance(mesh, bpy.types.Mesh) and mesh.users == 0:
            bpy.data.meshes.remove(mesh)
    found = _find(bpy.data.collections, collection) if collection is not None else None
    if found is not None:
        bpy.data.collections.remove(found)


def _select(dest: Destination, made: list[IdRef]) -> None:
    """Select exactly the new objects in the destination's view layer; the last one becomes active."""
    scene = bpy.data.scenes.get(dest.scene)
    view_layer = scene.view_layers.get(dest.view_layer) if scene is not None else None
    if view_layer is None:
        return
    objects = [o for o in (_find(bpy.data.objects, ref) for ref in made) if o is not None]
    view_layer.update()  # sync the view layer with the collections just made, or the new objects are not in it
    for obj in view_layer.objects:
        if obj.select_get(view_layer=view_layer):
            obj.select_set(False, view_layer=view_layer)
    visible = [o for o in objects if o.name in view_layer.objects]  # not in an excluded collection
    for obj in visible:
        obj.select_set(True, view_layer=view_layer)
    if visible:
        view_layer.objects.active = visible[-1]


def build_objects(dest: Destination, items: list[NewObject], undo_message: str, new_collection: str | None = None,
                  look: Look = Look()) -> jobs.Steps:
    """Steps (see jobs.Steps) that add `items` one object per step, into a new child collection named
    `new_collection` of the destination's collection, or into that collection itself; then select them
    and record ONE undo step when applied by the timer or in background mode (where operators called
    from Python push none); an operator that finishes the build in a window gets Blender's own step.
    Returns the new collection's final name ("" without one).

    Between steps only names are held and looked up again, so an undo or a file load between timer
    calls is noticed instead of touching freed data. A build that cannot finish is rolled back rather
    than completed: when a step fails (bad mesh, its collection removed meanwhile) or the Steps are
    closed early (cancel, or jobs.drop_pending on unregister), every object, mesh and collection it
    made is removed again before the error goes on, and no undo step is recorded."""
    made: list[IdRef] = []
    collection_ref: IdRef | None = None
    try:
        parent = _parent_collection(dest)
        if new_collection is not None:
            collection = bpy.data.collections.new(new_collection)
            parent.children.link(collection)
            collection_ref = (collection.name, collection.session_uid)
        for i, item in enumerate(items):
            if collection_ref is not None:
                target = _find(bpy.data.collections, collection_ref)
                if target is None:
                    raise RuntimeError(f"collection '{collection_ref[0]}' was removed (undo or another file loaded) "
                                       f"after {len(made)} of {len(items)} objects were added")
            else:
                target = _parent_collection(dest)
            obj = _add_object(target, item, look)
            made.append((obj.name, obj.session_uid))
            yield (i + 1) / len(items)
    except BaseException:
        _remove_built(made, collection_ref)
        raise
    _select(dest, made)
    if jobs.applying_in_timer() or bpy.app.background:
        jobs.undo_push(undo_message)
    return collection_ref[0] if collection_ref is not None else ""
