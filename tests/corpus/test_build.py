"""The corpus builder end to end on a tiny Debian package made here with dpkg-deb: unpack, read, filter,
deduplicate, label, write manifests, and resume without redoing work."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import trimesh

from backend.data.datasets import load_folder
from scripts.corpus.__main__ import main
from scripts.corpus.sources.ufoai import ARCHIVE
from scripts.corpus.sources.ufoai import METRES_PER_UNIT as UFOAI_UNIT

from .test_readers import md2_bytes

pytestmark = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs Debian's dpkg-deb")


def _mesh(*boxes: tuple[tuple[float, float, float], tuple[float, float, float]]) -> tuple[np.ndarray, np.ndarray]:
    parts = [trimesh.creation.box(extents=e).apply_translation(at) for e, at in boxes]
    m = trimesh.util.concatenate(parts)
    return np.asarray(m.vertices), np.asarray(m.faces)


L_SHAPE = _mesh(((4.0, 1.0, 1.0), (2.0, 0.0, 0.0)), ((1.0, 1.0, 3.0), (0.5, 0.0, 2.0)))
MEMBERS = {  # path in the pk3 -> (vertices, faces); what the builder should do with it in the comment
    "models/objects/furniture/chairs/chair.md2": L_SHAPE,                                   # kept: chair
    "models/objects/furniture/chairs/chair2.md2": (L_SHAPE[0] * [-1.0, 1.0, 1.0], L_SHAPE[1]),  # mirrored copy
    "models/objects/vegi/tree03/tree03.md2": _mesh(((1.0, 1.0, 6.0), (0, 0, 0)), ((3.0, 3.0, 2.0), (0, 0, 3.0))),
    "models/objects/vegi/palm2/leaf.md2": _mesh(((2.0, 1.0, 0.5), (0, 0, 0))),             # part of a model
    "models/objects/furniture/thing/blob.md2": _mesh(((1.0, 2.0, 3.0), (0, 0, 0))),        # no category
    "models/objects/furniture/desk/desk.md2": _mesh(((3.0, 2.0, 0.001), (0, 0, 0))),       # flat
}


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder holding a fake ufoai-data .deb, built with dpkg-deb from the meshes above."""
    root = tmp_path_factory.mktemp("pkg")
    tree = root / "ufoai-data"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        "Package: ufoai-data\nVersion: 9.9-test\nArchitecture: all\nMaintainer: Test <t@example.org>\n"
        "Description: tiny test package\n")
    doc = tree / "usr/share/doc/ufoai-data"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
        "Files: *\nCopyright: the team\nLicense: GPL-2+\n\n"
        "Files:\n base/models/objects/vegi/tree03/tree03.md2\nCopyright: a modeller\nLicense: CC-BY-SA-3.0\n")
    pk3 = tree / ARCHIVE
    pk3.parent.mkdir(parents=True)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, (v, f) in MEMBERS.items():
            zf.writestr(name, md2_bytes([v], f))
    pk3.write_bytes(buf.getvalue())
    cache = root / "cache"
    (cache / "debs").mkdir(parents=True)
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(tree),
                    str(cache / "debs" / "ufoai-data_9.9-test_all.deb")], check=True, capture_output=True)
    return cache


def test_build_labels_filters_deduplicates_and_resumes(cache: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "corpus"
    argv = ["--out", str(out), "--cache", str(cache), "--sources", "ufoai-data", "--split", str(tmp_path / "no.json")]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "2 meshes written, 4 candidates skipped" in printed
    summary = json.loads((out / "manifest.json").read_text())["summary"]
    assert summary["per_category"] == {"chair": 1, "tree": 1}
    assert summary["skipped"] == {"duplicate": 1, "flat": 1, "no category": 1, "part of a model": 1}
    assert summary["packages"] == {"ufoai-data": "9.9-test"}
    assert summary["per_licence"] == {"CC-BY-SA-3.0": 1, "GPL-2+": 1}
    assert "chair" in printed and "tree" in printed
    record = json.loads(next((out / "meshes" / "chair").glob("*.json")).read_text())
    assert record["original_path"].endswith("!models/objects/furniture/chairs/chair.md2")
    assert record["source"] == "ufoai-data" and record["category"] == "chair"
    rejected = [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]
    dup = next(r for r in rejected if r["reason"] == "duplicate")
    assert dup["key"].endswith("chair2.md2") and dup["duplicate_of"] == record["id"]
    csv_lines = (out / "manifest.csv").read_text().splitlines()
    assert csv_lines[0].startswith("id,category,source") and len(csv_lines) == 3
    # The output is a folder-per-label dataset the backend reads as is.
    sets = load_folder(out / "meshes", cache_dir=tmp_path / "points", progress=False)
    assert sorted(sets.labels) == ["chair", "tree"]
    # Written in metres: the source's unit times the file's numbers, the factor in the manifest.
    assert record["metres_per_unit"] == UFOAI_UNIT
    np.testing.assert_allclose(np.ptp(trimesh.load(out / record["file"]).vertices, axis=0),
                               np.ptp(L_SHAPE[0], axis=0) * UFOAI_UNIT, rtol=1e-6)
    # A rerun reads nothing again and changes nothing.
    obj = out / record["file"]
    before = obj.stat().st_mtime_ns
    assert main(argv) == 0
    assert "0 meshes written, 0 candidates skipped, 6 already done" in capsys.readouterr().out
    assert obj.stat().st_mtime_ns == before


def test_a_mesh_written_before_meshes_were_in_metres_is_written_again(
        cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "corpus"
    argv = ["--out", str(out), "--cache", str(cache), "--sources", "ufoai-data", "--split", str(tmp_path / "no.json")]
    assert main(argv) == 0
    fresh = {p.name: p.read_bytes() for p in sorted((out / "meshes").glob("*/*"))}
    manifest = next((out / "meshes" / "chair").glob("*.json"))
    old = json.loads(manifest.read_text())
    del old["metres_per_unit"]  # as an older builder wrote it (the OBJ in the file's units)
    manifest.write_text(json.dumps(old, indent=1) + "\n")
    capsys.readouterr()
    assert main(argv) == 0
    assert "1 meshes written, 0 candidates skipped, 5 already done" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in sorted((out / "meshes").glob("*/*"))} == fresh


def test_a_held_out_category_that_is_too_small_is_refused(cache: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    split = tmp_path / "split.json"
    argv = ["--out", str(tmp_path / "c"), "--cache", str(cache), "--sources", "ufoai-data", "--split", str(split),
            "--new-split", "chair"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--new-split" in err and "'chair' has 1" in err
    assert not split.exists()


def test_an_unknown_source_is_refused_by_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path / "c"), "--sources", "sweethome3d-furniture,libcgal-demo"]) == 2
    assert "libcgal-demo" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_a_missing_assimp_that_cannot_be_installed_says_how(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from scripts.corpus.fetch import FetchError, ensure_assimp

    monkeypatch.setenv("PATH", str(tmp_path))  # an OS with neither assimp nor apt-get on the PATH
    with pytest.raises(FetchError, match="apt-get install assimp-utils") as err:
        ensure_assimp()
    assert "--sources" in str(err.value)
