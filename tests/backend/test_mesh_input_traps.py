"""Valid meshes that used to distort silently or fail with a raw error: unused vertices, polygon OFF faces,
file names that are not UTF-8, coordinates near the ends of the float range."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from backend.cli import main
from backend.data.datasets import load_folder, split_files
from backend.data.meshio import Mesh, load_mesh, normalisation_of, save_mesh, validate_mesh
from backend.data.procedural import generate, write_dataset

LATIN1 = b"caf\xe9"  # "café" in Latin-1: not valid UTF-8
UNDECODABLE = os.name == "posix" and not os.path.supports_unicode_filenames


def _with_stray_vertex(mesh: Mesh, factor: float = 100.0) -> Mesh:
    far = mesh.vertices.mean(axis=0) + factor * np.ptp(mesh.vertices, axis=0).max()
    return Mesh(np.vstack([mesh.vertices, far]), mesh.faces)


def test_vertices_no_face_uses_do_not_change_the_normalisation() -> None:
    mug = generate("mug", 0)
    plain, stray = normalisation_of(mug.vertices, mug.faces), normalisation_of(
        _with_stray_vertex(mug).vertices, mug.faces)
    assert np.array_equal(plain.center, stray.center) and plain.scale == stray.scale


def test_an_unused_far_vertex_does_not_shrink_or_flatter_a_reconstruction(service) -> None:
    mug = generate("mug", 0)
    plain, plain_cd = service.reconstruct(mug, resolution=42, fit="encoder")
    stray, stray_cd = service.reconstruct(_with_stray_vertex(mug), resolution=42, fit="encoder")
    assert np.array_equal(plain.vertices, stray.vertices) and plain_cd == stray_cd


def test_an_unused_far_vertex_does_not_shrink_the_training_points(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    save_mesh(root / "mug.off", _with_stray_vertex(generate("mug", 0)))
    sets = load_folder(root, n_cache=256, cache_dir=tmp_path / "cache", progress=False)
    radius = np.linalg.norm(sets.points[0], axis=1).max()
    assert radius > 0.9  # the mug fills the unit ball; with the stray vertex counted it was about 0.01


def test_polygon_off_faces_of_mixed_sizes_are_triangulated(tmp_path: Path) -> None:
    path = tmp_path / "poly.off"
    path.write_text("OFF\n# a triangle, a quad and a pentagon\n6 3 0\n0 0 0\n1 0 0\n1 1 0\n0 1 0\n0.5 0.5 1\n"
                    "0.5 1.5 0\n3 0 1 4\n4 0 1 2 3\n5 0 1 2 5 3\n")
    mesh = load_mesh(path)
    assert mesh.faces.tolist() == [[0, 1, 4], [0, 1, 2], [0, 2, 3], [0, 1, 2], [0, 2, 5], [0, 5, 3]]


def test_an_off_face_with_fewer_than_three_corners_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.off"
    path.write_text("OFF\n3 2 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n2 0 1\n")
    with pytest.raises(Exception, match=r"bad\.off: not a readable OFF mesh \(face 2 has 2 corners"):
        load_mesh(path)


@pytest.mark.skipif(not UNDECODABLE, reason="needs a POSIX file system that takes any bytes as a name")
def test_a_file_name_that_is_not_utf8_reconstructs(tiny_model_dir: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "mug.off"
    save_mesh(source, generate("mug", 0))
    odd = Path(os.fsdecode(bytes(tmp_path) + b"/" + LATIN1 + b".off"))
    shutil.copy(source, odd)
    out = Path(os.fsdecode(bytes(tmp_path) + b"/" + LATIN1 + b"_vae.obj"))
    assert main(["reconstruct", str(odd), "--model", str(tiny_model_dir), "--fit", "encoder", "--resolution", "42",
                 "--out", str(out), "--device", "cpu"]) == 0
    assert len(load_mesh(out).vertices) == 42
    assert "caf\\xe9_vae.obj (Chamfer" in capsys.readouterr().out


@pytest.mark.skipif(not UNDECODABLE, reason="needs a POSIX file system that takes any bytes as a name")
def test_a_data_folder_with_names_that_are_not_utf8_is_used(tmp_path: Path) -> None:
    root = tmp_path / "data"
    write_dataset(root, ["sword", "mug"], per_family=2, seed=0)
    folder = Path(os.fsdecode(bytes(root) + b"/" + LATIN1))
    folder.mkdir()
    shutil.copy(next(root.rglob("*.obj")), os.fsdecode(bytes(folder) + b"/" + LATIN1 + b".obj"))
    sets = load_folder(root, n_cache=64, cache_dir=tmp_path / "cache", progress=False)
    assert "caf\\xe9/caf\\xe9.obj" in sets.names and "caf\\xe9" in sets.labels
    assert all(name.encode("utf-8") for name in sets.names + sets.labels)
    files = [Path(p) for p in sorted(map(str, root.rglob("*.obj")))]
    assert sum(len(v) for v in split_files(files, root, val_fraction=0.5).values()) == len(files)


@pytest.mark.parametrize("scale", [1e200, 1e-200])
def test_meshes_near_the_ends_of_the_float_range_are_valid(scale: float, service) -> None:
    mug = generate("mug", 0)
    big = validate_mesh(mug.vertices * scale, mug.faces, name="scaled")
    norm = normalisation_of(big.vertices, big.faces)
    assert np.allclose(norm.apply(big.vertices), normalisation_of(mug.vertices).apply(mug.vertices))
    result, cd = service.reconstruct(big, resolution=42, fit="encoder")
    plain, plain_cd = service.reconstruct(mug, resolution=42, fit="encoder")
    # The unit-ball inputs differ from the plain mesh's in their last float64 bits, which the float32 network
    # may round to a neighbouring float32: allow a few float32 steps.
    assert np.allclose(result.vertices / scale, plain.vertices, rtol=1e-5, atol=1e-5)
    assert np.isclose(cd, plain_cd, rtol=1e-5)


def test_a_truly_collinear_mesh_is_still_refused_at_any_scale() -> None:
    line = np.array([[0.0, 0, 0], [1, 1, 1], [2, 2, 2]])
    for scale in (1.0, 1e200, 1e-200):
        with pytest.raises(Exception, match="collinear"):
            validate_mesh(line * scale, [[0, 1, 2]], name="line")
