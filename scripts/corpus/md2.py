"""A reader for Quake II MD2 models (as ufoai ships them): the first animation frame as a triangle mesh.

Layout (little-endian): magic "IDP2", version 8, then 15 int32 header fields; triangles are six uint16
(three vertex and three texture-coordinate indices); a frame is a float32 scale and translate, a
16-byte name, then one (x, y, z, normal-index) uint8 quadruple per vertex.
"""

from __future__ import annotations

import struct

import numpy as np

MAGIC = b"IDP2"
HEADER = struct.Struct("<4s16i")
FIELDS = ("version", "skin_width", "skin_height", "frame_size", "num_skins", "num_xyz", "num_st", "num_tris",
          "num_glcmds", "num_frames", "ofs_skins", "ofs_st", "ofs_tris", "ofs_frames", "ofs_glcmds", "ofs_end")


class MD2Error(ValueError):
    """A file that is not a readable MD2 model."""


def read_md2(data: bytes, name: str = "md2") -> tuple[np.ndarray, np.ndarray, int]:
    """(vertices (V, 3) float64, faces (F, 3) int64, frame count) of frame 0; ufoai's zero glcmd offset is fine."""
    if len(data) < HEADER.size:
        raise MD2Error(f"{name}: {len(data)} bytes, too short for an MD2 header")
    magic, *values = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise MD2Error(f"{name}: not an MD2 file (magic {magic!r}, expected {MAGIC!r})")
    h = dict(zip(FIELDS, values))
    if h["version"] != 8:
        raise MD2Error(f"{name}: MD2 version {h['version']}, only 8 is known")
    nv, nt, nf = h["num_xyz"], h["num_tris"], h["num_frames"]
    if nv < 3 or nt < 1 or nf < 1:
        raise MD2Error(f"{name}: empty model ({nv} vertices, {nt} triangles, {nf} frames)")
    if h["frame_size"] < 40 + 4 * nv:
        raise MD2Error(f"{name}: frame size {h['frame_size']} too small for {nv} vertices")
    tris_end = h["ofs_tris"] + 12 * nt
    frame_end = h["ofs_frames"] + 40 + 4 * nv
    if min(h["ofs_tris"], h["ofs_frames"]) < HEADER.size or max(tris_end, frame_end) > len(data):
        raise MD2Error(f"{name}: triangle or frame data lies outside the {len(data)}-byte file")
    tris = np.frombuffer(data, dtype="<u2", count=6 * nt, offset=h["ofs_tris"]).reshape(nt, 6)[:, :3]
    if int(tris.max()) >= nv:
        raise MD2Error(f"{name}: a triangle uses vertex {int(tris.max())} of {nv}")
    scale = np.frombuffer(data, dtype="<f4", count=3, offset=h["ofs_frames"]).astype(np.float64)
    translate = np.frombuffer(data, dtype="<f4", count=3, offset=h["ofs_frames"] + 12).astype(np.float64)
    packed = np.frombuffer(data, dtype=np.uint8, count=4 * nv, offset=h["ofs_frames"] + 40).reshape(nv, 4)
    vertices = packed[:, :3].astype(np.float64) * scale + translate
    return vertices, tris.astype(np.int64), nf
