"""Write a tiny AtlasVAE model folder whose decoder maps the sphere template onto itself, or (TEMPLATE
"squares") eight square patches onto the faces of a cube, overlapping as a patch model's do.

Run with the backend's Python (it needs torch): `python make_tiny_model.py OUT_DIR [NAME [LABELS
[TEMPLATE [PRIOR]]]]`, LABELS a comma-separated list of family names that get a prior each (fitted to random
codes; may be empty); PRIOR "prior" also stores a model-wide aggregate-posterior prior of random training
codes, which the Shape Explorer finds its directions in. With a zero encoder mean, every reconstruction is the input's bounding sphere in
the input's frame (centre = vertex centroid, radius = farthest vertex), which lets add-on tests check
world-space placement exactly; sampled codes bend the sphere, so different seeds give different shapes.
The squares model decodes the zero code (a sample at temperature 0) to the cube [-0.5, 0.5]^3: six
patches are its faces and two more lie on two of them, half their size.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from backend.checkpoints import save_model
from backend.model import AtlasVAE, ModelConfig
from backend.prior import GaussianMixturePrior, fit_label_priors, posterior_mixture


def _seeded_encoder(model: AtlasVAE) -> None:
    """Fixed random encoder weights (seeds 1 and 2) and a narrow posterior, shared by the tiny models."""
    enc = model.encoder
    for layer in enc.point_layers:
        torch.nn.init.normal_(layer.weight, std=0.3, generator=torch.Generator().manual_seed(1))
    torch.nn.init.normal_(enc.fc.weight, std=0.3, generator=torch.Generator().manual_seed(2))
    assert enc.logvar is not None
    enc.logvar.bias.fill_(-4.0)


def identity_sphere_model() -> AtlasVAE:
    """latent 6: hidden = relu([p, -p] + z), output = hidden[:3] - hidden[3:], so z = 0 gives p back."""
    cfg = ModelConfig(mode="vae", template="sphere", patches=1, latent_dim=6, encoder_widths=(8, 16),
                      decoder_width=6, decoder_layers=0, norm="none")
    model = AtlasVAE(cfg)
    eye3, eye6 = torch.eye(3), torch.eye(6)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        _seeded_encoder(model)
        dec = model.decoders[0]
        dec.inp.weight.copy_(torch.cat([eye3, -eye3]))
        dec.layers[0].weight.copy_(eye6)
        dec.out.weight.copy_(torch.cat([eye3, -eye3], dim=1))
    return model.eval()


CUBE_PATCHES = (  # (origin, u edge, v edge) of each patch: the six faces, then two half-size overlaps
    ((-0.5, -0.5, -0.5), (0, 1, 0), (0, 0, 1)), ((0.5, -0.5, -0.5), (0, 1, 0), (0, 0, 1)),
    ((-0.5, -0.5, -0.5), (1, 0, 0), (0, 0, 1)), ((-0.5, 0.5, -0.5), (1, 0, 0), (0, 0, 1)),
    ((-0.5, -0.5, -0.5), (1, 0, 0), (0, 1, 0)), ((-0.5, -0.5, 0.5), (1, 0, 0), (0, 1, 0)),
    ((-0.25, -0.25, 0.5), (0.5, 0, 0), (0, 0.5, 0)), ((-0.5, -0.25, -0.25), (0, 0.5, 0), (0, 0, 0.5)))


def cube_patches_model() -> AtlasVAE:
    """latent 6, eight patches: hidden = relu([u, v, 1, 0, 0, 0] + z), output = origin + u * U + v * V
    for z = 0, each patch its own (origin, U, V) from CUBE_PATCHES."""
    cfg = ModelConfig(mode="vae", template="squares", patches=len(CUBE_PATCHES), latent_dim=6,
                      encoder_widths=(8, 16), decoder_width=6, decoder_layers=0, norm="none")
    model = AtlasVAE(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        _seeded_encoder(model)
        for dec, (origin, u_edge, v_edge) in zip(model.decoders, CUBE_PATCHES):
            dec.inp.weight[0, 0] = 1.0
            dec.inp.weight[1, 1] = 1.0
            dec.inp.bias[2] = 1.0
            dec.layers[0].weight.copy_(torch.eye(6))
            dec.out.weight[:, :3] = torch.tensor([u_edge, v_edge, origin], dtype=torch.float32).T
    return model.eval()


def random_label_priors(labels: list[str], latent_dim: int, per_label: int = 16) -> dict[str, GaussianMixturePrior]:
    """One prior per label, fitted to random codes centred apart so each family bends the sphere its own way."""
    rng = np.random.default_rng(0)
    codes = np.concatenate([rng.normal(0.3 * (i + 1), 0.1, size=(per_label, latent_dim)) for i in range(len(labels))])
    return fit_label_priors(codes, [label for label in labels for _ in range(per_label)])


def random_prior(latent_dim: int, shapes: int = 48) -> GaussianMixturePrior:
    """An aggregate posterior of `shapes` random training codes whose spread differs per dimension, so the
    codes have distinct main directions."""
    rng = np.random.default_rng(1)
    mu = rng.normal(0.0, 1.0, size=(shapes, latent_dim)) * np.linspace(0.4, 0.1, latent_dim)
    return posterior_mixture(mu, np.full((shapes, latent_dim), -6.0))


def main(argv: list[str]) -> int:
    out = Path(argv[0])
    name = argv[1] if len(argv) > 1 else out.name
    labels = [label for label in argv[2].split(",") if label] if len(argv) > 2 else []
    template = argv[3] if len(argv) > 3 else "sphere"
    if template not in ("sphere", "squares"):
        raise SystemExit(f"TEMPLATE must be sphere or squares, got {template!r}")
    model = cube_patches_model() if template == "squares" else identity_sphere_model()
    priors = random_label_priors(labels, model.cfg.latent_dim) if labels else None
    prior = random_prior(model.cfg.latent_dim) if len(argv) > 4 and argv[4] == "prior" else None
    save_model(out, model, prior=prior, meta={"name": name}, label_priors=priors)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
