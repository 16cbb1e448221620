"""Data folders holding things that are not regular files: FIFOs, device links, links leaving the folder.

A FIFO or a link to /dev/zero named like a mesh used to hang training forever (its bytes were hashed for
the cache key before anything checked what it was). Only regular files are read now; everything else is
skipped with a reason, reading stops on cancel, and a file link that leaves the folder is followed and
named in a warning.
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from backend.data.datasets import load_folder
from backend.data.meshio import load_mesh
from backend.data.procedural import write_dataset
from backend.errors import Cancelled, MeshError
from backend.training.config import TrainConfig
from backend.training.loop import run

POSIX_ONLY = pytest.mark.skipif(not hasattr(os, "mkfifo") or not Path("/dev/zero").exists(),
                                reason="needs os.mkfifo and /dev/zero")


def _data_with_traps(root: Path) -> Path:
    write_dataset(root, ["sword"], per_family=4, seed=0)
    os.mkfifo(root / "pipe.obj")
    (root / "zeros.obj").symlink_to("/dev/zero")
    return root


@POSIX_ONLY
def test_fifo_and_device_link_are_skipped_with_a_reason(tmp_path: Path) -> None:
    root = _data_with_traps(tmp_path / "data")
    sets = load_folder(root, n_cache=64, cache_dir=tmp_path / "cache", progress=False)
    skipped = dict(sets.skipped)
    assert len(sets.names) == 4
    assert skipped["pipe.obj"] == "not a regular file (a FIFO / named pipe); skipped without reading it"
    assert skipped["zeros.obj"] == "not a regular file (a character device); skipped without reading it"
    assert stat.S_ISFIFO((root / "pipe.obj").lstat().st_mode)  # nothing in --data was touched


@POSIX_ONLY
def test_load_mesh_refuses_a_fifo_without_opening_it(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.obj")
    with pytest.raises(MeshError, match=r"pipe\.obj: not a regular file \(a FIFO / named pipe\)"):
        load_mesh(tmp_path / "pipe.obj")


def test_reading_stops_when_cancelled(tmp_path: Path) -> None:
    root = tmp_path / "data"
    write_dataset(root, ["sword"], per_family=4, seed=0)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled, match="cancelled while reading"):
        load_folder(root, n_cache=64, cache_dir=tmp_path / "cache", progress=False, cancel=cancel)
    assert not (tmp_path / "cache").exists()  # no file was read, so nothing was cached


@POSIX_ONLY
def test_a_run_cancelled_while_reading_ends_cancelled_and_leaves_nothing(tmp_path: Path) -> None:
    root = _data_with_traps(tmp_path / "data")
    cancel = threading.Event()
    cancel.set()
    out = tmp_path / "out"
    cfg = TrainConfig.from_flat(dict(data=str(root), out=str(out), epochs=1, batch_size=2, points=64, latent_dim=8,
                                     decoder_width=16, decoder_layers=1, encoder_widths=(8, 16), sheet_every=0,
                                     device="cpu", cache_dir=str(tmp_path / "cache")))
    summary = run(cfg, progress=lambda event: None, cancel=cancel)
    assert summary["state"] == "cancelled" and summary["epoch"] == 0
    assert not out.exists()


def test_links_leaving_the_folder_are_followed_and_named(tmp_path: Path) -> None:
    outside = tmp_path / "library"
    write_dataset(outside, ["mug"], per_family=1, seed=3)
    root = tmp_path / "data"
    write_dataset(root, ["sword"], per_family=4, seed=0)
    target = next(outside.rglob("*.obj"))
    (root / "linked.obj").symlink_to(target)
    (root / "inside.obj").symlink_to(next(root.rglob("sword*.obj")))
    (root / "folder_link").symlink_to(outside, target_is_directory=True)
    sets = load_folder(root, n_cache=64, cache_dir=tmp_path / "cache", progress=False)
    assert "linked.obj" in sets.names and "inside.obj" in sets.names
    assert sets.warnings == [f"linked.obj: read through a link that leaves the data folder (to {target})"]
    assert dict(sets.skipped)["folder_link"] == "a link to a folder; links to folders are not followed"
