"""Template UVs: one (u, v) per face corner of the template mesh, so every decoded mesh (which shares
the template's connectivity) gets a usable UV map."""

from __future__ import annotations

import numpy as np
import pytest

from backend.templates import corner_uvs, template_mesh


@pytest.mark.parametrize("resolution", [162, 642])
def test_sphere_uvs_cover_every_corner_without_seam_stretch(resolution: int) -> None:
    pts, faces = template_mesh("sphere", 1, resolution)
    uvs = corner_uvs("sphere", 1, resolution)
    assert uvs.shape == (faces.size, 2) and uvs.dtype == np.float32
    assert np.isfinite(uvs).all()
    corner_u = uvs[:, 0].reshape(-1, 3)
    assert (corner_u.max(axis=1) - corner_u.min(axis=1)).max() < 0.5, "no face spans the whole map"
    assert uvs[:, 1].min() >= 0.0 and uvs[:, 1].max() <= 1.0
    flat = pts.reshape(-1, 3)
    z = flat[faces.ravel(), 2]
    expected_v = 0.5 + np.arcsin(np.clip(z, -1, 1)) / np.pi
    # float32 storage of values below 1.5 rounds by at most 2**-24 * 1.5 ~ 1e-7
    assert np.allclose(uvs[:, 1], expected_v, atol=1e-6), "v is the latitude of each corner's vertex"


def test_square_patches_each_get_their_own_tile() -> None:
    pts, faces = template_mesh("squares", 4, 400)
    uvs = corner_uvs("squares", 4, 400)
    assert uvs.shape == (faces.size, 2)
    assert uvs.min() >= 0.0 and uvs.max() <= 1.0
    per_patch = pts.shape[1]
    patch_of_corner = faces.ravel() // per_patch
    tiles = {k: (np.floor(uvs[patch_of_corner == k] * 2)).astype(int) for k in range(4)}
    assert [tuple(np.unique(t, axis=0)[0]) for t in tiles.values()] == [(0, 0), (1, 0), (0, 1), (1, 1)]
    assert all(len(np.unique(t, axis=0)) == 1 for t in tiles.values()), "a patch stays inside its tile"
