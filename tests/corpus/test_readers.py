"""The corpus builder's format readers and source helpers, on tiny files built here byte by byte."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from scripts.corpus.common import Candidate, categorise, words
from scripts.corpus.md2 import MD2Error, read_md2
from scripts.corpus.pmd import PMDError, read_pmd
from scripts.corpus.sources.sweethome import parse_catalogue, read_obj, rotation_of, size_of

# A tetrahedron: four corners, four triangles.
TETRA_V = np.array([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 4.0]])
TETRA_F = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])


def md2_bytes(frames: list[np.ndarray], faces: np.ndarray, glcmd_offset_zero: bool = True) -> bytes:
    """An MD2 file with one skin name, no texture coordinates and the given frames (packed to bytes)."""
    nv, nt = len(frames[0]), len(faces)
    frame_size = 40 + 4 * nv
    ofs_skins = 68
    ofs_st = ofs_skins + 64
    ofs_tris = ofs_st
    ofs_frames = ofs_tris + 12 * nt
    ofs_end = ofs_frames + frame_size * len(frames)
    header = struct.pack("<4s16i", b"IDP2", 8, 256, 256, frame_size, 1, nv, 0, nt, 0, len(frames), ofs_skins,
                         ofs_st, ofs_tris, ofs_frames, 0 if glcmd_offset_zero else ofs_end, ofs_end)
    skins = b"models/thing.png".ljust(64, b"\0")
    tris = b"".join(struct.pack("<6H", *f, 0, 0, 0) for f in faces)
    body = b""
    for k, verts in enumerate(frames):
        lo, hi = verts.min(axis=0), verts.max(axis=0)
        scale = (hi - lo) / 255.0
        packed = np.round((verts - lo) / scale).astype(np.uint8)
        body += struct.pack("<3f3f16s", *scale, *lo, f"frame{k}".encode())
        body += b"".join(struct.pack("<4B", *p, 0) for p in packed)
    return header + skins + tris + body


def pmd_bytes(vertices: np.ndarray, faces: np.ndarray, version: int = 4, uv_sets: int = 2) -> bytes:
    """A PMD file: vertices with normals, UV sets and bone blends, faces, no bones and no prop points."""
    body = struct.pack("<I", len(vertices))
    if version >= 4:
        body += struct.pack("<I", uv_sets)
    sets = uv_sets if version >= 4 else 1
    for v in vertices:
        body += struct.pack("<3f3f", *v, 0.0, 0.0, 1.0)
        body += struct.pack(f"<{2 * sets}f", *([0.5] * 2 * sets))
        body += struct.pack("<4B4f", 255, 255, 255, 255, 0.0, 0.0, 0.0, 0.0)
    body += struct.pack("<I", len(faces)) + b"".join(struct.pack("<3H", *f) for f in faces)
    body += struct.pack("<I", 0) + (struct.pack("<I", 0) if version >= 2 else b"")
    return b"PSMD" + struct.pack("<2I", version, len(body)) + body


def test_md2_reads_the_first_frame_with_ufoais_zero_glcmd_offset() -> None:
    moved = TETRA_V + np.array([10.0, 0.0, 0.0])
    vertices, faces, frames = read_md2(md2_bytes([TETRA_V, moved], TETRA_F))
    assert frames == 2
    np.testing.assert_array_equal(faces, TETRA_F)
    # Frame 0, quantised to 8 bits per axis: within half a step of the true corners.
    step = np.ptp(TETRA_V, axis=0) / 255.0
    assert np.all(np.abs(vertices - TETRA_V) <= step / 2 + 1e-6)


@pytest.mark.parametrize("mangle,match", [
    (lambda b: b"IDP3" + b[4:], "not an MD2"),
    (lambda b: b[:40], "too short"),
    (lambda b: b[:-10], "outside"),
    (lambda b: b[:4] + struct.pack("<i", 7) + b[8:], "version 7"),
])
def test_md2_refuses_broken_files_by_name(mangle, match: str) -> None:
    with pytest.raises(MD2Error, match=match) as err:
        read_md2(mangle(md2_bytes([TETRA_V], TETRA_F)), "thing.md2")
    assert "thing.md2" in str(err.value)


def test_md2_refuses_a_triangle_past_the_last_vertex() -> None:
    with pytest.raises(MD2Error, match="vertex 9"):
        read_md2(md2_bytes([TETRA_V], np.array([[0, 1, 9]])))


@pytest.mark.parametrize("version,uv_sets", [(4, 2), (4, 1), (3, 1)])
def test_pmd_reads_vertices_and_faces(version: int, uv_sets: int) -> None:
    vertices, faces = read_pmd(pmd_bytes(TETRA_V, TETRA_F, version, uv_sets))
    np.testing.assert_array_equal(vertices, TETRA_V)  # float32 holds these small integers exactly
    np.testing.assert_array_equal(faces, TETRA_F)


@pytest.mark.parametrize("mangle,match", [
    (lambda b: b"PSMX" + b[4:], "not a PMD"),
    (lambda b: b[:4] + struct.pack("<I", 2) + b[8:], "version 2"),
    (lambda b: b[:60], "do not fit"),
])
def test_pmd_refuses_broken_files_by_name(mangle, match: str) -> None:
    with pytest.raises(PMDError, match=match) as err:
        read_pmd(mangle(pmd_bytes(TETRA_V, TETRA_F)), "house.pmd")
    assert "house.pmd" in str(err.value)


def test_pmd_refuses_a_face_past_the_last_vertex() -> None:
    with pytest.raises(PMDError, match="vertex 7"):
        read_pmd(pmd_bytes(TETRA_V, np.array([[0, 1, 7]])))


def test_obj_in_latin1_is_read() -> None:
    text = "# chaise longue \xe9t\xe9\nv 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nf 1 3 2\nf 1 2 4\nf 1 4 3\nf 2 3 4\n"
    vertices, faces = read_obj(text.encode("latin-1"), "chaise.obj")
    assert vertices.shape == (4, 3) and faces.shape == (4, 3)


def test_sweethome_catalogue_entries_and_rotation() -> None:
    text = ("id=cat\nname#1=Chair\nmodel#1=/a/chair.obj\nmodelRotation#1=1 0 0 0 0 1 0 -1 0\n"
            "name#2=Table\nmodel#2=/a/table.obj\n")
    entries = parse_catalogue(text)
    assert [e["name"] for e in entries] == ["Chair", "Table"]
    np.testing.assert_array_equal(rotation_of(entries[0]), [[1, 0, 0], [0, 0, 1], [0, -1, 0]])
    assert rotation_of(entries[1]) is None


def test_a_z_up_model_with_its_catalogue_rotation_ends_up_z_up() -> None:
    # A pole 10 long along the file's Z; the catalogue rotation makes it Y-up (Sweet Home 3D's frame),
    # and the Y-up source is then turned into the backend's Z-up frame: the pole stands along Z again.
    pole = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 10]], dtype=float)
    rotation = np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], dtype=float)
    c = Candidate(source="s", path="p", category="lamp", licence="CC0", read=lambda: (pole, TETRA_F),
                  rotation=rotation, up="y")
    vertices, _ = c.load()
    assert int(np.ptp(vertices, axis=0).argmax()) == 2
    np.testing.assert_allclose(vertices[3], [0, 0, 10], atol=1e-12)


def test_a_catalogue_size_sets_the_scale_to_metres() -> None:
    box = np.array([[0, 0, 0], [50, 0, 0], [0, 40, 0], [0, 0, 90]], dtype=float)  # 50 x 40 x 90 file units
    entry = parse_catalogue("name#1=Chair\nmodel#1=/a/c.obj\nwidth#1=50\ndepth#1=40\nheight#1=90\n")[0]
    c = Candidate(source="s", path="p", category="chair", licence="x", read=lambda: (box, TETRA_F),
                  size=size_of(entry))
    assert c.size == pytest.approx((0.5, 0.4, 0.9))
    assert c.metres_per_unit(box, default=7.0) == pytest.approx(0.01)  # the file was in centimetres
    assert c.metres_per_unit(box / 100, default=7.0) == pytest.approx(1.0)  # ... or in metres
    assert size_of(parse_catalogue("name#1=X\nwidth#1=5\n")[0]) is None
    bare = Candidate(source="s", path="p", category="chair", licence="x", read=lambda: (box, TETRA_F))
    assert bare.metres_per_unit(box, default=0.45) == 0.45  # no catalogue size: the source's unit


def test_a_y_up_source_is_turned_z_up() -> None:
    tree = np.array([[0, 0, 0], [1, 0, 0], [0, 15, 0], [0, 0, 1]], dtype=float)
    c = Candidate(source="0ad-data", path="p", category="tree", licence="x", read=lambda: (tree, TETRA_F), up="y")
    vertices, _ = c.load()
    np.testing.assert_allclose(vertices[2], [0, 0, 15], atol=1e-12)


@pytest.mark.parametrize("names,expected", [
    (("Table lamp",), "lamp"),
    (("Coffee table",), "table"),
    (("Armchair",), "armchair"),
    (("Baby bottle",), "bottle"),
    (("acacia_bush_small_1",), "bush"),
    (("oak_hungarian_2",), "tree"),
    (("hele_hoplite_a", "helmet", "props"), "helmet"),
    (("ptol_ship_trireme", "structural"), "ship"),
    (("Puzzle",), None),
])
def test_categories_come_from_name_words_in_rule_order(names: tuple[str, ...], expected: str | None) -> None:
    assert categorise(*names) == expected


def test_words_split_camel_case_and_separators() -> None:
    assert words("bowlWithSalad_2.obj") == ["bowl", "with", "salad", "obj"]


DEP5 = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/

Files: *
Copyright: the team
License: CC-BY-SA-3.0+

Files: data/nieb/*
 data/jojo/*
Copyright: someone
License: CC0-1.0

Files: data/nieb/signage/*
Copyright: someone else
License: CC-BY-3.0

License: CC0-1.0
 The full text.
"""


@pytest.mark.parametrize("path,expected", [
    ("data/mikeplus64/drum/drum.obj", "CC-BY-SA-3.0+"),
    ("data/nieb/desk/model.obj", "CC0-1.0"),
    ("data/jojo/barrel01/tris.obj", "CC0-1.0"),
    ("data/nieb/signage/model.obj", "CC-BY-3.0"),
])
def test_dep5_licence_is_the_last_matching_files_stanza(path: str, expected: str) -> None:
    from scripts.corpus.licences import licence_of

    assert licence_of(DEP5, path) == expected


@pytest.mark.parametrize("relative,expected", [
    ("Residential/SDHouse1.ac", "building"),
    ("Maritime/Civilian/Trawler.ac", "ship"),
    ("Transport/110Bus.ac", "truck"),
    ("Transport/ICE3middlecar.ac", "train"),
    ("Aircraft/H-60.ac", "aircraft"),
    ("Aircraft/strobe.ac", None),
    ("Weather/cumulus.ac", None),
    ("Effects/Wildfire/fire.ac", None),
    ("Maritime/Misc/RedBuoy.ac", None),
])
def test_flightgear_categories_come_from_folders(relative: str, expected: str | None) -> None:
    from scripts.corpus.sources.flightgear import category_of

    assert category_of(relative) == expected


@pytest.mark.parametrize("stem,part", [
    ("hele_trireme_mainsail", True), ("celt_boat_fishing_mast", True), ("kart_merchant_ship_cargo", True),
    ("hele_trireme_ram", True), ("baobab_1_leaves", True), ("ptol_temple_helle_roof", True),
    ("rome_ram", False), ("hele_trireme", False), ("oak1", False), ("ptol_temple_helle", False),
])
def test_0ad_model_pieces_are_told_from_whole_objects(stem: str, part: bool) -> None:
    from scripts.corpus.sources.zeroad import PART

    assert bool(PART.search(stem)) == part
