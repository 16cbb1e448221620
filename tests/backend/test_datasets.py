"""Folder discovery, splits, the point cache and procedural point sets (backend/data/datasets.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

from backend.data import datasets
from backend.data.datasets import (
    default_cache_dir,
    find_mesh_files,
    label_of,
    load_folder,
    procedural_point_sets,
    split_files,
)
from backend.data.meshio import Mesh, save_mesh
from backend.data.procedural import generate
from backend.errors import ConfigError, DataError, MeshError

N = 256


def write_box(path: Path, size: float = 1.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    box = trimesh.creation.box(extents=(size, 2 * size, 3 * size))
    save_mesh(path, Mesh(vertices=box.vertices, faces=box.faces))
    return path


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """Three good meshes in two class folders and one text file posing as a mesh."""
    root = tmp_path / "data"
    save_mesh(_mkdir(root / "mugs") / "a.obj", generate("mug", 1))
    save_mesh(root / "mugs" / "b.stl", generate("mug", 2))
    save_mesh(_mkdir(root / "swords") / "c.ply", generate("sword", 3))
    (root / "swords" / "broken.obj").write_text("this is not a mesh\n")
    return root


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# -------------------------------------------------------------------------------------- discovery


def test_find_mesh_files_any_tree(tmp_path: Path) -> None:
    for rel in ["b/z.obj", "a/deep/er/y.STL", "x.Ply", "c/w.glb", ".hidden/v.obj", "a/.u.obj", "notes.txt"]:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    found = [p.relative_to(tmp_path).as_posix() for p in find_mesh_files(tmp_path)[0]]
    assert found == ["a/deep/er/y.STL", "b/z.obj", "c/w.glb", "x.Ply"]


def test_find_mesh_files_bad_root(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data folder not found"):
        find_mesh_files(tmp_path / "nope")
    (tmp_path / "file.obj").write_text("x")
    with pytest.raises(DataError, match="is not a folder"):
        find_mesh_files(tmp_path / "file.obj")


def test_shapenet_layout(tmp_path: Path) -> None:
    root = tmp_path / "ShapeNetCore.v2"
    for synset, model in [("02691156", "1a04e3eab45ca15dd8"), ("03001627", "1006be65e7bc937e91")]:
        write_box(root / synset / model / "models" / "model_normalized.obj")
    files = find_mesh_files(root)[0]
    assert [label_of(f, root) for f in files] == ["02691156", "03001627"]
    synset_root = root / "03001627"
    assert [label_of(f, synset_root) for f in find_mesh_files(synset_root)[0]] == ["03001627"]


def test_modelnet_layout_and_its_own_split(tmp_path: Path) -> None:
    root = tmp_path / "ModelNet10"
    for cls in ("chair", "desk"):
        for split, count in (("train", 12), ("test", 4)):
            for i in range(count):
                path = root / cls / split / f"{cls}_{split}_{i:04d}.off"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n")
    files = find_mesh_files(root)[0]
    assert {label_of(f, root) for f in files} == {"chair", "desk"}
    splits = split_files(files, root, val_fraction=0.25, test_fraction=0.0)
    assert {f.parent.name for f in splits["test"]} == {"test"} and len(splits["test"]) == 8
    assert {f.parent.name for f in splits["train"] + splits["val"]} == {"train"}
    assert len(splits["val"]) >= 1


def test_plain_layout_labels_are_parent_folders(data_dir: Path) -> None:
    files = find_mesh_files(data_dir)[0]
    assert [label_of(f, data_dir) for f in files] == ["mugs", "mugs", "swords", "swords"]
    assert label_of(data_dir / "top.obj", data_dir) == "data"


# ----------------------------------------------------------------------------------------- splits


def fake_files(root: Path, count: int) -> list[Path]:
    return [root / f"class{i % 7}" / f"shape_{i:05d}.obj" for i in range(count)]


def test_split_is_deterministic_and_respects_fractions(tmp_path: Path) -> None:
    files = fake_files(tmp_path, 2000)
    a = split_files(files, tmp_path, val_fraction=0.2, test_fraction=0.1, seed=3)
    b = split_files(list(reversed(files)), tmp_path, val_fraction=0.2, test_fraction=0.1, seed=3)
    assert a == b
    assert sorted(a["train"] + a["val"] + a["test"]) == sorted(files)
    assert 300 <= len(a["val"]) <= 500 and 120 <= len(a["test"]) <= 280
    other = split_files(files, tmp_path, val_fraction=0.2, test_fraction=0.1, seed=4)
    assert other["val"] != a["val"]


def test_adding_a_file_moves_no_other_file(tmp_path: Path) -> None:
    files = fake_files(tmp_path, 300)
    before = split_files(files, tmp_path, val_fraction=0.2)
    after = split_files(files + [tmp_path / "new" / "extra.obj"], tmp_path, val_fraction=0.2)
    for name in ("train", "val", "test"):
        assert set(before[name]) <= set(after[name])


def test_split_depends_on_the_relative_path_only(tmp_path: Path) -> None:
    rel = [f"c/s{i}.obj" for i in range(100)]
    a = split_files([tmp_path / "one" / r for r in rel], tmp_path / "one", val_fraction=0.3)
    b = split_files([tmp_path / "two" / r for r in rel], tmp_path / "two", val_fraction=0.3)
    assert [p.name for p in a["val"]] == [p.name for p in b["val"]]


@pytest.mark.parametrize("count", [2, 3, 5])
def test_val_gets_a_file_and_train_keeps_one(tmp_path: Path, count: int) -> None:
    for seed in range(20):
        split = split_files(fake_files(tmp_path, count), tmp_path, val_fraction=0.01, seed=seed)
        assert len(split["val"]) >= 1 and len(split["train"]) >= 1


def test_single_file_goes_to_train(tmp_path: Path) -> None:
    split = split_files(fake_files(tmp_path, 1), tmp_path, val_fraction=0.5)
    assert len(split["train"]) == 1 and split["val"] == []


@pytest.mark.parametrize(
    "kwargs, phrase",
    [
        (dict(val_fraction=-0.1), "val_fraction must be a number in"),
        (dict(val_fraction=1.0), "val_fraction must be a number in"),
        (dict(test_fraction="0.1"), "test_fraction must be a number in"),
        (dict(val_fraction=0.6, test_fraction=0.5), "must be below 1"),
        (dict(seed=1.5), "seed must be an integer"),
    ],
)
def test_split_rejects_bad_fractions(tmp_path: Path, kwargs: dict, phrase: str) -> None:
    with pytest.raises(ConfigError, match=phrase):
        split_files(fake_files(tmp_path, 10), tmp_path, **kwargs)


# ------------------------------------------------------------------------------------ load_folder


def test_load_folder_samples_unit_ball_points_and_skips_bad_files(data_dir: Path, tmp_path: Path) -> None:
    before = snapshot(data_dir)
    sets = load_folder(data_dir, n_cache=N, cache_dir=tmp_path / "cache", progress=False)
    assert sets.names == ["mugs/a.obj", "mugs/b.stl", "swords/c.ply"]
    assert sets.labels == ["mugs", "mugs", "swords"]
    assert sets.points.shape == (3, N, 3) and sets.points.dtype == np.float32
    assert np.linalg.norm(sets.points, axis=2).max() <= 1.0 + 1e-5
    assert len(sets) == 3
    [(name, reason)] = sets.skipped
    assert name == "swords/broken.obj" and "no mesh data found" in reason
    assert snapshot(data_dir) == before
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 2 * 3  # points and extents per mesh


def test_second_load_comes_from_the_cache(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = load_folder(data_dir, n_cache=N, cache_dir=tmp_path / "cache", progress=False)
    calls: list[Path] = []

    def parser(data: bytes, path: Path, max_faces: int = 0) -> Mesh:
        calls.append(Path(path))
        raise MeshError(f"{path}: unreadable")

    monkeypatch.setattr(datasets, "parse_mesh", parser)
    second = load_folder(data_dir, n_cache=N, cache_dir=tmp_path / "cache", progress=False)
    np.testing.assert_array_equal(first.points, second.points)
    assert calls == [data_dir / "swords" / "broken.obj"]  # only the file that never made it into the cache


def test_cache_is_keyed_by_content_and_point_count(data_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = load_folder(data_dir, n_cache=N, cache_dir=cache, progress=False)
    save_mesh(data_dir / "mugs" / "a.obj", generate("mug", 99))
    second = load_folder(data_dir, n_cache=N, cache_dir=cache, progress=False)
    assert not np.array_equal(first.points[0], second.points[0])
    np.testing.assert_array_equal(first.points[1:], second.points[1:])
    fewer = load_folder(data_dir, n_cache=N // 2, cache_dir=cache, progress=False)
    assert fewer.points.shape == (3, N // 2, 3)


def test_extents_are_the_files_bounding_boxes_and_survive_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "data"
    write_box(root / "small" / "a.obj", size=0.5)
    write_box(root / "big" / "b.obj", size=4.0)
    first = load_folder(root, n_cache=N, cache_dir=tmp_path / "cache", progress=False)
    assert first.names == ["big/b.obj", "small/a.obj"]
    assert first.extents.dtype == np.float32
    np.testing.assert_allclose(first.extents, [[4.0, 8.0, 12.0], [0.5, 1.0, 1.5]], rtol=1e-6)

    def parser(data: bytes, path: Path, max_faces: int = 0) -> Mesh:
        raise AssertionError(f"{path} was parsed again although it is cached")

    monkeypatch.setattr(datasets, "parse_mesh", parser)
    second = load_folder(root, n_cache=N, cache_dir=tmp_path / "cache", progress=False)
    np.testing.assert_array_equal(first.extents, second.extents)
    np.testing.assert_array_equal(first.points, second.points)


def test_cache_without_extents_reads_the_file_once_more(data_dir: Path, tmp_path: Path) -> None:
    """A cache written before extents were kept: the points stay as they were, the extents are added."""
    cache = tmp_path / "cache"
    first = load_folder(data_dir, n_cache=N, cache_dir=cache, progress=False)
    for path in cache.glob("*.extents.npy"):
        path.unlink()
    second = load_folder(data_dir, n_cache=N, cache_dir=cache, progress=False)
    np.testing.assert_array_equal(first.points, second.points)
    np.testing.assert_array_equal(first.extents, second.extents)
    assert len(list(cache.glob("*.extents.npy"))) == 3


def test_corrupt_cache_file_is_recomputed(data_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = load_folder(data_dir, n_cache=N, cache_dir=cache, progress=False)
    for path in cache.glob("*.npy"):
        path.write_bytes(b"garbage")
    second = load_folder(data_dir, n_cache=N, cache_dir=cache, progress=False)
    np.testing.assert_array_equal(first.points, second.points)


def test_cache_file_that_is_an_npz_archive_is_recomputed(data_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = load_folder(data_dir, n_cache=N, cache_dir=cache, progress=False)
    for path in cache.glob("*.npy"):
        with path.open("wb") as fh:
            np.savez(fh, points=np.zeros((N, 3), dtype=np.float32))  # np.load gives an NpzFile, not an array
    second = load_folder(data_dir, n_cache=N, cache_dir=cache, progress=False)
    np.testing.assert_array_equal(first.points, second.points)


def test_unwritable_cache_is_not_fatal(data_dir: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the cache folder should go")
    sets = load_folder(data_dir, n_cache=N, cache_dir=blocker / "cache", progress=False)
    assert len(sets) == 3


def test_default_cache_dir_follows_the_environment(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATLASVAE_CACHE", str(tmp_path / "env_cache"))
    assert default_cache_dir() == tmp_path / "env_cache"
    load_folder(data_dir, n_cache=N, progress=False)
    assert len(list((tmp_path / "env_cache").glob("*.extents.npy"))) == 3
    monkeypatch.delenv("ATLASVAE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "atlasvae" / "points"


def test_progress_bar_goes_to_stderr_only_when_asked(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    load_folder(data_dir, n_cache=N, cache_dir=tmp_path / "cache", progress=False)
    quiet = capsys.readouterr()
    load_folder(data_dir, n_cache=N, cache_dir=tmp_path / "cache", progress=True)
    loud = capsys.readouterr()
    assert quiet.out == quiet.err == "" and loud.out == ""
    assert "Reading meshes" in loud.err


def test_folder_without_usable_meshes(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no mesh files"):
        load_folder(tmp_path, cache_dir=tmp_path / "cache", progress=False)
    (tmp_path / "bad.obj").write_text("nothing here\n")
    with pytest.raises(DataError, match="none of the 1 mesh files.*bad.obj: no mesh data found"):
        load_folder(tmp_path, cache_dir=tmp_path / "cache", progress=False)


@pytest.mark.parametrize("kwargs", [dict(n_cache=0), dict(max_faces=-1), dict(n_cache=1.5)])
def test_load_folder_rejects_bad_numbers(data_dir: Path, kwargs: dict) -> None:
    with pytest.raises(ConfigError, match="must be a positive integer"):
        load_folder(data_dir, progress=False, **kwargs)


def test_max_faces_skips_big_meshes(tmp_path: Path) -> None:
    root = tmp_path / "data"
    write_box(root / "box.obj")
    save_mesh(root / "mug.obj", generate("mug", 0))
    sets = load_folder(root, n_cache=N, cache_dir=tmp_path / "cache", max_faces=100, progress=False)
    assert sets.names == ["box.obj"]
    [(name, reason)] = sets.skipped
    assert name == "mug.obj" and "more than the limit of 100" in reason


# --------------------------------------------------------------------------------- procedural sets


def test_procedural_point_sets_are_deterministic() -> None:
    a = procedural_point_sets(["mug", "lamp"], per_family=2, seed=4, n_cache=N)
    b = procedural_point_sets(["mug", "lamp"], per_family=2, seed=4, n_cache=N)
    c = procedural_point_sets(["mug", "lamp"], per_family=2, seed=5, n_cache=N)
    np.testing.assert_array_equal(a.points, b.points)
    assert not np.array_equal(a.points, c.points)
    assert a.names == ["mug/0000", "mug/0001", "lamp/0000", "lamp/0001"]
    assert a.labels == ["mug", "mug", "lamp", "lamp"] and a.skipped == []
    assert a.points.shape == (4, N, 3) and a.points.dtype == np.float32
    assert np.linalg.norm(a.points, axis=2).max() <= 1.0 + 1e-5
    # the families are built in metres: their extents are their own sizes
    np.testing.assert_allclose(a.extents[0], np.ptp(generate("mug", datasets.item_seed(4, 0)).vertices, axis=0),
                               rtol=1e-6)


@pytest.mark.parametrize(
    "args, phrase",
    [
        ((["ufo"], 1, 0), "unknown shape family 'ufo'"),
        (([], 1, 0), "at least one"),
        ((["mug"], 0, 0), "per_family must be a positive integer"),
        ((["mug"], 1, -3), "seed must be an integer >= 0"),
    ],
)
def test_procedural_point_sets_reject_bad_arguments(args: tuple[list[str], int, int], phrase: str) -> None:
    families, per_family, seed = args
    with pytest.raises(ConfigError, match=phrase):
        procedural_point_sets(families, per_family, seed, n_cache=8)
