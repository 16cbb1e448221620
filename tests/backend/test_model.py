"""AtlasVAE network and templates: shapes, modes, batch-size-1 inference, parameter count, template meshes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from backend.errors import ConfigError
from backend.model import AtlasVAE, ModelConfig
from backend.templates import (ICOSPHERE_VERTICES, icosphere_level, random_points, template_dim,
                               template_mesh)

TINY: dict[str, Any] = dict(latent_dim=16, encoder_widths=(16, 32), decoder_width=32, decoder_layers=1)


def _cloud(batch: int, n: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, n, 3, generator=g) * 2 - 1


@pytest.mark.parametrize("template,patches,dim", [("sphere", 1, 3), ("squares", 3, 2)])
def test_forward_shapes(template: str, patches: int, dim: int) -> None:
    torch.manual_seed(0)
    model = AtlasVAE(ModelConfig(template=template, patches=patches, **TINY))
    tpl = random_points(template, patches, 90)
    assert tpl.shape == (patches, 90 // patches, dim)
    pred, mu, logvar = model(_cloud(4), tpl)
    assert pred.shape == (4, patches * (90 // patches), 3)
    assert mu.shape == (4, 16)
    assert logvar is not None and logvar.shape == (4, 16)


def test_ae_mode_has_no_logvar_and_is_deterministic_in_training() -> None:
    torch.manual_seed(0)
    model = AtlasVAE(ModelConfig(mode="ae", **TINY))
    assert model.encoder.logvar is None
    tpl = random_points("sphere", 1, 32)
    x = _cloud(4)
    pred, mu, logvar = model(x, tpl)
    assert logvar is None
    torch.testing.assert_close(model.decode(mu, tpl), pred)


def test_vae_samples_z_only_in_training() -> None:
    torch.manual_seed(0)
    model = AtlasVAE(ModelConfig(**TINY))
    tpl = random_points("sphere", 1, 32)
    x = _cloud(4)
    model.eval()
    a, mu, _ = model(x, tpl)
    b, _, _ = model(x, tpl)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, model.decode(mu, tpl))
    model.train()
    torch.manual_seed(1)
    c, _, _ = model(x, tpl)
    torch.manual_seed(2)
    d, _, _ = model(x, tpl)
    assert not torch.allclose(c, d)


def test_mu_can_be_negative() -> None:
    torch.manual_seed(0)
    model = AtlasVAE(ModelConfig(**TINY)).eval()
    with torch.no_grad():
        mu, logvar = model.encode(_cloud(8))
    assert (mu < 0).any(), "posterior mean heads must sit before any ReLU"
    assert logvar is not None and (logvar < 0).any()


def test_batch_size_one_inference_in_eval_mode() -> None:
    torch.manual_seed(0)
    model = AtlasVAE(ModelConfig(**TINY))
    tpl = random_points("sphere", 1, 50)
    model.train()
    model(_cloud(4), tpl)  # give the batch-norm running statistics something
    model.eval()
    with torch.no_grad():
        pred, mu, _ = model(_cloud(1), tpl)
        z = model.decode(torch.zeros(1, 16), tpl)
    assert pred.shape == (1, 50, 3) and z.shape == (1, 50, 3)
    assert torch.isfinite(pred).all() and torch.isfinite(mu).all()


def test_norm_none_trains_at_batch_size_one() -> None:
    torch.manual_seed(0)
    model = AtlasVAE(ModelConfig(norm="none", **TINY)).train()
    pred, _, _ = model(_cloud(1), random_points("sphere", 1, 20))
    assert pred.shape == (1, 20, 3)


def test_atlasnet_reference_parameter_count_is_about_3_3_million() -> None:
    count = sum(p.numel() for p in AtlasVAE(ModelConfig.atlasnet_reference()).parameters())
    assert 3.2e6 <= count <= 3.4e6, count


def test_config_round_trips_through_dict() -> None:
    cfg = ModelConfig(template="squares", patches=4, **TINY)
    d = cfg.to_dict()
    assert d["encoder_widths"] == [16, 32]
    assert ModelConfig.from_dict(d) == cfg


@pytest.mark.parametrize("bad", [dict(mode="gan"), dict(template="cube"), dict(norm="layer"),
                                 dict(latent_dim=0), dict(patches=0), dict(decoder_width=-1),
                                 dict(decoder_layers=-1), dict(encoder_widths=()),
                                 dict(encoder_widths=("wide",)), dict(encoder_widths=16),
                                 dict(latent_dim="16"), dict(latent_dim=16.0), dict(decoder_layers=True)])
def test_invalid_config_raises(bad: dict) -> None:
    with pytest.raises(ConfigError):
        ModelConfig(**bad)


def test_from_dict_rejects_unknown_keys() -> None:
    with pytest.raises(ConfigError, match="latent_size"):
        ModelConfig.from_dict({"latent_size": 4})


# --- templates -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("resolution,level", [(12, 0), (42, 1), (162, 2), (642, 3), (700, 3), (2562, 4),
                                              (2000, 4), (10242, 5), (200_000, 7)])
def test_icosphere_level_snaps_to_nearest(resolution: int, level: int) -> None:
    assert icosphere_level(resolution) == level


def test_icosphere_level_rejects_tiny_resolution() -> None:
    with pytest.raises(ConfigError, match="resolution"):
        icosphere_level(11)


@pytest.mark.parametrize("resolution", [642, 2562])
def test_sphere_template_mesh(resolution: int) -> None:
    pts, faces = template_mesh("sphere", 1, resolution)
    assert pts.shape == (1, resolution, 3)
    assert faces.dtype == np.int64 and faces.shape[1] == 3
    assert faces.min() == 0 and faces.max() == resolution - 1
    np.testing.assert_allclose(np.linalg.norm(pts[0], axis=1), 1.0, atol=1e-5)
    # A closed triangulated sphere: F = 2V - 4.
    assert len(faces) == 2 * resolution - 4


def test_sphere_template_with_patches_keeps_total_resolution() -> None:
    pts, faces = template_mesh("sphere", 2, 1284)
    assert pts.shape == (2, ICOSPHERE_VERTICES[3], 3)
    assert faces.max() == 2 * ICOSPHERE_VERTICES[3] - 1
    assert faces[: len(faces) // 2].max() < ICOSPHERE_VERTICES[3] <= faces[len(faces) // 2:].min()


def test_squares_template_grid() -> None:
    pts, faces = template_mesh("squares", 4, 400)
    assert pts.shape == (4, 100, 2)
    assert pts.min() == 0.0 and pts.max() == 1.0
    assert len(faces) == 4 * 2 * 9 * 9
    assert faces.min() == 0 and faces.max() == 399
    # Every patch's faces stay inside its own block of 100 points.
    per_patch = faces.reshape(4, -1, 3)
    for k in range(4):
        assert per_patch[k].min() >= 100 * k and per_patch[k].max() < 100 * (k + 1)
    # Each grid triangle has non-zero area in the unit square.
    p = pts[0]
    tri = p[faces[: len(faces) // 4]]
    cross = (tri[:, 1, 0] - tri[:, 0, 0]) * (tri[:, 2, 1] - tri[:, 0, 1]) - \
        (tri[:, 1, 1] - tri[:, 0, 1]) * (tri[:, 2, 0] - tri[:, 0, 0])
    assert np.all(np.abs(cross) > 0)


def test_random_points_sphere_on_unit_sphere_and_squares_in_unit_square() -> None:
    g = torch.Generator().manual_seed(0)
    sphere = random_points("sphere", 1, 500, g)
    torch.testing.assert_close(sphere.norm(dim=-1), torch.ones(1, 500))
    squares = random_points("squares", 5, 500, g)
    assert squares.shape == (5, 100, 2)
    assert squares.min() >= 0 and squares.max() <= 1


def test_unknown_template_kind_raises() -> None:
    with pytest.raises(ConfigError, match="cube"):
        template_dim("cube")
    with pytest.raises(ConfigError, match="cube"):
        template_mesh("cube", 1, 100)
