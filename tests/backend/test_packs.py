"""Point packs: `pack` writes a folder's points to one .npz; train reads it as --data with the same split."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from backend.cli import main
from backend.data.datasets import load_folder
from backend.data.packs import read_pack, write_pack
from backend.data.procedural import write_dataset
from backend.errors import ConfigError, DataError
from backend.training.data import load_data

# float16 keeps 11 significant bits: a unit-ball coordinate moves by at most half a unit in the last place.
FLOAT16_HALF_ULP_AT_1 = 2.0 ** -11


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight procedural meshes in two label folders."""
    root = tmp_path_factory.mktemp("meshes")
    write_dataset(root, ["sword", "mug"], 4, seed=3)
    return root


def _pack(folder: Path, out: Path, cache: Path, points: int = 64) -> int:
    return main(["pack", "--data", str(folder), "--out", str(out), "--points", str(points),
                 "--cache-dir", str(cache)])


def test_pack_round_trip_keeps_names_labels_and_points(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.npz"
    assert _pack(folder, out, tmp_path / "cache") == 0
    sets = read_pack(out)
    direct = load_folder(folder, n_cache=64, cache_dir=tmp_path / "cache", progress=False)
    assert sets.names == direct.names and sets.labels == direct.labels
    assert sets.points.dtype == np.float32 and sets.points.shape == direct.points.shape == (8, 64, 3)
    assert np.max(np.abs(sets.points - direct.points)) <= FLOAT16_HALF_ULP_AT_1
    assert np.array_equal(sets.extents, direct.extents)


def test_training_from_a_pack_splits_like_the_folder(folder: Path, tmp_path: Path, make_train_config) -> None:
    out = tmp_path / "p.npz"
    _pack(folder, out, tmp_path / "cache", points=4096)
    from_pack = load_data(make_train_config(tmp_path / "a", procedural=None, data=str(out), val_fraction=0.25))
    from_folder = load_data(make_train_config(tmp_path / "b", procedural=None, data=str(folder),
                                              val_fraction=0.25, cache_dir=str(tmp_path / "cache")))
    for split in ("train", "val", "test"):
        assert from_pack[split].names == from_folder[split].names
        assert from_pack[split].labels == from_folder[split].labels


def test_train_and_refit_prior_run_from_a_pack(folder: Path, tmp_path: Path) -> None:
    pack = tmp_path / "p.npz"
    _pack(folder, pack, tmp_path / "cache")
    code = main(["train", "--data", str(pack), "--out", str(tmp_path / "run"), "--epochs", "1",
                 "--batch-size", "4", "--points", "32", "--latent-dim", "8", "--decoder-width", "16",
                 "--decoder-layers", "1", "--sheet-every", "0", "--prior-components", "2", "--device", "cpu"])
    assert code == 0
    assert (tmp_path / "run" / "model.safetensors").is_file()
    assert main(["refit-prior", "--model", str(tmp_path / "run"), "--out", str(tmp_path / "refit"),
                 "--device", "cpu"]) == 0
    assert (tmp_path / "refit" / "model.safetensors").is_file()


def test_pack_refuses_to_overwrite_without_force(folder: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "p.npz"
    out.write_bytes(b"mine")
    assert _pack(folder, out, tmp_path / "cache") == 2
    assert "already exists" in capsys.readouterr().err
    assert out.read_bytes() == b"mine"
    assert main(["pack", "--data", str(folder), "--out", str(out), "--points", "64", "--force",
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    assert len(read_pack(out)) == 8


@pytest.mark.parametrize("name, points, match", [("p.zip", "64", "must end in .npz"),
                                                  ("p.npz", "0", "--points must be between"),
                                                  ("p.npz", "1000000000", "--points must be between")])
def test_pack_refuses_bad_options_before_reading(folder: Path, tmp_path: Path, name: str, points: str, match: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pack", "--data", str(folder), "--out", str(tmp_path / name), "--points", points]) == 2
    assert match in capsys.readouterr().err
    assert not (tmp_path / name).exists()


def _write_npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def _good(count: int = 2) -> dict[str, np.ndarray]:
    return {"format": np.array("atlasvae-points-1"), "points": np.zeros((count, 5, 3), np.float16),
            "extents": np.ones((count, 3), np.float32),
            "names": np.array([f"a/{i}.obj" for i in range(count)]), "labels": np.array(["a"] * count)}


@pytest.mark.parametrize("change, match", [
    ({"format": np.array("something-else")}, "pack format"),
    ({"points": np.zeros((2, 5), np.float16)}, "shape"),
    ({"points": np.full((2, 5, 3), np.nan, np.float32)}, "finite"),
    ({"points": np.zeros((2, 5, 3), np.int32)}, "floating-point"),
    ({"extents": np.ones((1, 3), np.float32)}, "extents must be 2 finite sizes"),
    ({"extents": np.full((2, 3), -1.0, np.float32)}, "extents must be 2 finite sizes"),
    ({"names": np.array(["a/0.obj"])}, "names must be 2 strings"),
    ({"labels": np.array([1, 2])}, "labels must be 2 strings"),
    ({"names": np.array(["a/0.obj", "a/0.obj"])}, "unique"),
])
def test_malformed_packs_are_refused_by_name(tmp_path: Path, change: dict, match: str) -> None:
    path = _write_npz(tmp_path / "bad.npz", **{**_good(), **change})
    with pytest.raises(DataError, match=match) as info:
        read_pack(path)
    assert str(path) in str(info.value)


def test_a_pickled_array_is_refused_not_unpickled(tmp_path: Path) -> None:
    path = _write_npz(tmp_path / "bad.npz", **{**_good(), "names": np.array([object(), object()], dtype=object)})
    with pytest.raises(DataError, match="not a readable point pack"):
        read_pack(path)


@pytest.mark.parametrize("content, match", [(b"not a zip", "not a readable point pack"),
                                            (None, "missing format, points, extents")])
def test_files_that_are_not_packs_are_refused(tmp_path: Path, content: bytes | None, match: str) -> None:
    path = tmp_path / "x.npz"
    if content is None:
        _write_npz(path, other=np.zeros(3))
    else:
        path.write_bytes(content)
    with pytest.raises(DataError, match=match):
        read_pack(path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_named_like_a_pack_is_never_opened(tmp_path: Path) -> None:
    path = tmp_path / "fifo.npz"
    os.mkfifo(path)
    with pytest.raises(DataError, match="fifo.npz"):
        read_pack(path)


def test_write_pack_refuses_a_folder_in_the_way(tmp_path: Path) -> None:
    (tmp_path / "p.npz").mkdir()
    sets = read_pack(_write_npz(tmp_path / "ok.npz", **_good()))
    with pytest.raises(ConfigError, match="not a file"):
        write_pack(sets, tmp_path / "p.npz", force=True)


def test_missing_pack_is_a_clear_error(tmp_path: Path, make_train_config) -> None:
    with pytest.raises(ConfigError, match="not a folder"):
        make_train_config(tmp_path / "run", procedural=None, data=str(tmp_path / "nope.zip")).check()
    with pytest.raises(DataError, match="nope.npz: cannot be read"):
        load_data(make_train_config(tmp_path / "run", procedural=None, data=str(tmp_path / "nope.npz")))
