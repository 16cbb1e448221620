"""Mesh loading, validation, saving and unit-ball normalisation (backend/data/meshio.py)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import trimesh

from backend.data.meshio import (
    MESH_SUFFIXES,
    Mesh,
    Normalisation,
    load_mesh,
    normalisation_of,
    save_mesh,
    validate_mesh,
)
from backend.errors import MeshError


def box_mesh(extents: tuple[float, float, float] = (1.0, 2.0, 3.0), offset: float = 0.5) -> Mesh:
    box = trimesh.creation.box(extents=extents)
    return Mesh(vertices=np.asarray(box.vertices) + offset, faces=np.asarray(box.faces))


def write_text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


TRIANGLE_OBJ = "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n"


# ------------------------------------------------------------------------------------------ loading


@pytest.mark.parametrize("suffix", sorted(MESH_SUFFIXES))
def test_every_format_round_trips(tmp_path: Path, suffix: str) -> None:
    mesh = box_mesh()
    path = tmp_path / f"box{suffix}"
    save_mesh(path, mesh)
    loaded = load_mesh(path)
    assert loaded.vertices.dtype == np.float64 and loaded.faces.dtype == np.int64
    assert loaded.faces.shape == (12, 3)
    np.testing.assert_allclose(loaded.vertices.min(axis=0), mesh.vertices.min(axis=0), atol=1e-6)
    np.testing.assert_allclose(loaded.vertices.max(axis=0), mesh.vertices.max(axis=0), atol=1e-6)


def test_gltf_is_saved_as_one_self_contained_file(tmp_path: Path) -> None:
    save_mesh(tmp_path / "box.gltf", box_mesh())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["box.gltf"]


def test_files_written_by_trimesh_load(tmp_path: Path) -> None:
    sphere = trimesh.creation.icosphere(subdivisions=1)
    for suffix in (".obj", ".stl", ".ply", ".off", ".glb"):
        sphere.export(tmp_path / f"sphere{suffix}")
        assert len(load_mesh(tmp_path / f"sphere{suffix}").faces) == 80


@pytest.mark.parametrize(
    "name, text",
    [
        ("quad.obj", "v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nf 1 2 3 4\n"),
        ("quad.off", "OFF\n4 1 0\n0 0 0\n1 0 0\n1 1 0\n0 1 0\n4 0 1 2 3\n"),
        (
            "quad.ply",
            "ply\nformat ascii 1.0\nelement vertex 4\nproperty float x\nproperty float y\nproperty float z\n"
            "element face 1\nproperty list uchar int vertex_indices\nend_header\n"
            "0 0 0\n1 0 0\n1 1 0\n0 1 0\n4 0 1 2 3\n",
        ),
    ],
)
def test_polygons_are_triangulated(tmp_path: Path, name: str, text: str) -> None:
    mesh = load_mesh(write_text(tmp_path / name, text))
    assert mesh.faces.shape == (2, 3)


def test_modelnet_off_header_with_glued_count_loads(tmp_path: Path) -> None:
    path = write_text(tmp_path / "m.off", "OFF3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n")
    assert load_mesh(path).faces.shape == (1, 3)


def test_glb_scene_is_flattened_with_node_transforms(tmp_path: Path) -> None:
    scene = trimesh.Scene()
    scene.add_geometry(trimesh.creation.box(extents=(1, 1, 1)), node_name="box",
                       transform=trimesh.transformations.translation_matrix([5.0, 0.0, 0.0]))
    scene.add_geometry(trimesh.creation.icosphere(subdivisions=1, radius=1.0), node_name="ball",
                       transform=trimesh.transformations.scale_matrix(2.0))
    path = tmp_path / "scene.glb"
    scene.export(path)
    mesh = load_mesh(path)
    assert len(mesh.faces) == 12 + 80
    np.testing.assert_allclose(mesh.vertices.min(axis=0), [-2.0, -2.0, -2.0], atol=1e-6)
    np.testing.assert_allclose(mesh.vertices.max(axis=0), [5.5, 2.0, 2.0], atol=1e-6)
    assert mesh.faces.max() == len(mesh.vertices) - 1


def test_obj_with_several_objects_keeps_all_of_them(tmp_path: Path) -> None:
    text = "o a\n" + TRIANGLE_OBJ + "o b\nv 0 0 5\nv 1 0 5\nv 0 1 5\nf 4 5 6\n"
    mesh = load_mesh(write_text(tmp_path / "two.obj", text))
    assert len(mesh.faces) == 2
    assert mesh.vertices[:, 2].max() == 5.0


# ------------------------------------------------------------------------------------- bad files


def truncated_stl(path: Path) -> Path:
    box = trimesh.creation.box()
    path.write_bytes(box.export(file_type="stl")[:300])
    return path


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def make_folder(path: Path) -> Path:
    path.mkdir()
    return path


BAD_FILES = {
    "missing": (lambda d: d / "nowhere.obj", "not found"),
    "folder": (lambda d: make_folder(d / "dir.obj"), "is a folder"),
    "suffix": (lambda d: write_text(d / "mesh.xyz", TRIANGLE_OBJ), "unsupported mesh format"),
    "empty": (lambda d: write_text(d / "empty.obj", ""), "empty (0 bytes)"),
    "text": (lambda d: write_text(d / "notes.obj", "shopping list\nmilk\neggs\n"), "no mesh data found"),
    "png": (lambda d: write_bytes(d / "picture.obj", b"\x89PNG\r\n\x1a\n" + bytes(64)), "PNG image"),
    "truncated": (lambda d: truncated_stl(d / "cut.stl"), "truncated binary STL"),
    "points": (lambda d: write_text(d / "cloud.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\n"), "no faces"),
    "nan": (lambda d: write_text(d / "nan.obj", "v 0 0 nan\nv 1 0 0\nv 0 1 0\nf 1 2 3\n"), "NaN or infinite"),
    "point": (lambda d: write_text(d / "dot.obj", "v 1 1 1\nv 1 1 1\nv 1 1 1\nf 1 2 3\n"), "same point"),
    "line": (lambda d: write_text(d / "line.obj", "v 0 0 0\nv 1 1 1\nv 2 2 2\nf 1 2 3\n"), "zero area"),
    "glb": (lambda d: write_bytes(d / "junk.glb", b"glTF\x02\x00\x00\x00junk"), "not a readable GLB"),
    "ply": (lambda d: write_text(d / "junk.ply", "solid nonsense\n"), "'ply' header"),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_each_bad_file_gets_its_own_clear_error(tmp_path: Path, kind: str) -> None:
    make, phrase = BAD_FILES[kind]
    path = make(tmp_path)
    with pytest.raises(MeshError) as info:
        load_mesh(path)
    message = str(info.value)
    assert path.name in message
    assert phrase in message
    others = [p for k, (_, p) in BAD_FILES.items() if k != kind]
    assert not any(other in message for other in others), message


def test_glb_whose_json_is_not_an_object_gets_a_clear_error(tmp_path: Path) -> None:
    doc = b"[]  "  # JSON, padded to 4 bytes, but a list where glTF has an object
    path = tmp_path / "list.glb"
    path.write_bytes(b"glTF" + struct.pack("<II", 2, 20 + len(doc)) + struct.pack("<II", len(doc), 0x4E4F534A) + doc)
    with pytest.raises(MeshError, match=r"list\.glb: not a readable GLB"):
        load_mesh(path)


def test_too_many_faces_is_refused_from_the_header(tmp_path: Path) -> None:
    path = tmp_path / "big.stl"
    box = trimesh.creation.box()
    box.export(path)
    with pytest.raises(MeshError, match=r"big\.stl: has 12 faces, more than the limit of 5"):
        load_mesh(path, max_faces=5)


@pytest.mark.parametrize("suffix", [".obj", ".ply", ".off", ".glb", ".gltf"])
def test_too_many_faces_in_every_format(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"big{suffix}"
    save_mesh(path, box_mesh())
    with pytest.raises(MeshError, match="more than the limit of 11"):
        load_mesh(path, max_faces=11)
    assert len(load_mesh(path, max_faces=12).faces) == 12


def test_binary_stl_whose_header_starts_with_solid_still_loads(tmp_path: Path) -> None:
    data = bytearray(trimesh.creation.box().export(file_type="stl"))
    data[:5] = b"solid"
    path = tmp_path / "tricky.stl"
    path.write_bytes(bytes(data))
    assert len(load_mesh(path).faces) == 12


def test_truncated_stl_message_gives_sizes(tmp_path: Path) -> None:
    path = truncated_stl(tmp_path / "cut.stl")
    count = struct.unpack_from("<I", path.read_bytes(), 80)[0]
    with pytest.raises(MeshError, match=f"promises {count} triangles"):
        load_mesh(path)


# ------------------------------------------------------------------------------------- validation


def test_validate_mesh_converts_wire_dtypes() -> None:
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=np.float32)
    f = np.array([[0, 1, 2]], dtype=np.int32)
    mesh = validate_mesh(v, f, name="param 'mesh'")
    assert mesh.vertices.dtype == np.float64 and mesh.faces.dtype == np.int64


@pytest.mark.parametrize(
    "vertices, faces, phrase",
    [
        (np.zeros((3, 2)), [[0, 1, 2]], r"vertices must have shape \(V, 3\), got \(3, 2\)"),
        ([[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 1, 2, 0]], r"faces must have shape \(F, 3\)"),
        ([[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0.0, 1.0, 2.0]], "faces must be integers"),
        ([["a", "b", "c"]], [[0, 0, 0]], "vertices must be numbers"),
        (np.zeros((0, 3)), np.zeros((0, 3), dtype=int), "empty"),
        ([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.zeros((0, 3), dtype=int), "no faces"),
        ([[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 1, -1]], "negative vertex index"),
        ([[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 1, 3]], "refer to vertex 3 but there are only 3"),
        ([[0, 0, 0], [1, 0, np.inf], [0, 1, 0]], [[0, 1, 2]], "1 of 3 vertices are NaN or infinite"),
        ([[2, 2, 2]] * 3, [[0, 1, 2]], "same point"),
        ([[0, 0, 0], [1, 0, 0], [2, 0, 0]], [[0, 1, 2]], "zero area"),
    ],
)
def test_validate_mesh_names_the_input_and_the_problem(vertices: object, faces: object, phrase: str) -> None:
    with pytest.raises(MeshError, match=phrase) as info:
        validate_mesh(vertices, faces, name="param 'mesh_a'")
    assert str(info.value).startswith("param 'mesh_a': ")


def test_validate_mesh_face_limit() -> None:
    mesh = box_mesh()
    with pytest.raises(MeshError, match="12 faces, more than the limit of 10"):
        validate_mesh(mesh.vertices, mesh.faces, max_faces=10)


# ---------------------------------------------------------------------------------- normalisation


def test_normalisation_maps_to_unit_ball_and_back() -> None:
    rng = np.random.default_rng(0)
    points = rng.normal(size=(200, 3)) * [3.0, 1.0, 0.5] + [10.0, -4.0, 2.0]
    norm = normalisation_of(points)
    unit = norm.apply(points)
    np.testing.assert_allclose(unit.mean(axis=0), 0.0, atol=1e-12)
    assert np.linalg.norm(unit, axis=1).max() == pytest.approx(1.0)
    np.testing.assert_allclose(norm.invert(unit), points, atol=1e-9)


def test_normalisation_keeps_float32_and_accepts_batches() -> None:
    norm = Normalisation(center=np.array([1.0, 2.0, 3.0]), scale=2.0)
    batch = np.ones((2, 5, 3), dtype=np.float32)
    out = norm.apply(batch)
    assert out.dtype == np.float32 and out.shape == (2, 5, 3)
    np.testing.assert_allclose(out[0, 0], [0.0, -0.5, -1.0])


def test_normalisation_of_coincident_points_is_an_error() -> None:
    with pytest.raises(MeshError, match="same point"):
        normalisation_of(np.ones((4, 3)))
    with pytest.raises(MeshError, match=r"shape \(\.\.\., 3\)"):
        normalisation_of(np.ones((4, 2)))


# ----------------------------------------------------------------------------------------- saving


def test_save_mesh_refuses_unknown_suffix_and_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(MeshError, match="cannot save as '.xyz'"):
        save_mesh(tmp_path / "a.xyz", box_mesh())
    with pytest.raises(MeshError, match="does not exist"):
        save_mesh(tmp_path / "missing" / "a.obj", box_mesh())


def test_save_mesh_replaces_existing_file_without_leftovers(tmp_path: Path) -> None:
    path = tmp_path / "a.ply"
    save_mesh(path, box_mesh(offset=0.0))
    save_mesh(path, box_mesh(offset=10.0))
    assert load_mesh(path).vertices.min() == pytest.approx(8.5)
    assert [p.name for p in tmp_path.iterdir()] == ["a.ply"]
