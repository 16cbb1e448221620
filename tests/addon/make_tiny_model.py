"""Write a tiny AtlasVAE model folder whose decoder maps the sphere template onto itself.

Run with the backend's Python (it needs torch): `python make_tiny_model.py OUT_DIR [NAME [LABELS]]`,
LABELS a comma-separated list of family names that get a prior each (fitted to random codes). With a
zero encoder mean, every reconstruction is the input's bounding sphere in the input's frame (centre =
vertex centroid, radius = farthest vertex), which lets add-on tests check world-space placement
exactly; sampled codes bend the sphere, so different seeds give different shapes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from backend.checkpoints import save_model
from backend.model import AtlasVAE, ModelConfig
from backend.prior import GaussianMixturePrior, fit_label_priors


def identity_sphere_model() -> AtlasVAE:
    """latent 6: hidden = relu([p, -p] + z), output = hidden[:3] - hidden[3:], so z = 0 gives p back."""
    cfg = ModelConfig(mode="vae", template="sphere", patches=1, latent_dim=6, encoder_widths=(8, 16),
                      decoder_width=6, decoder_layers=0, norm="none")
    model = AtlasVAE(cfg)
    eye3, eye6 = torch.eye(3), torch.eye(6)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        enc = model.encoder
        for layer in enc.point_layers:
            torch.nn.init.normal_(layer.weight, std=0.3, generator=torch.Generator().manual_seed(1))
        torch.nn.init.normal_(enc.fc.weight, std=0.3, generator=torch.Generator().manual_seed(2))
        assert enc.logvar is not None
        enc.logvar.bias.fill_(-4.0)
        dec = model.decoders[0]
        dec.inp.weight.copy_(torch.cat([eye3, -eye3]))
        dec.layers[0].weight.copy_(eye6)
        dec.out.weight.copy_(torch.cat([eye3, -eye3], dim=1))
    return model.eval()


def random_label_priors(labels: list[str], latent_dim: int, per_label: int = 16) -> dict[str, GaussianMixturePrior]:
    """One prior per label, fitted to random codes centred apart so each family bends the sphere its own way."""
    rng = np.random.default_rng(0)
    codes = np.concatenate([rng.normal(0.3 * (i + 1), 0.1, size=(per_label, latent_dim)) for i in range(len(labels))])
    return fit_label_priors(codes, [label for label in labels for _ in range(per_label)])


def main(argv: list[str]) -> int:
    out = Path(argv[0])
    name = argv[1] if len(argv) > 1 else out.name
    labels = [label for label in argv[2].split(",") if label] if len(argv) > 2 else []
    model = identity_sphere_model()
    priors = random_label_priors(labels, model.cfg.latent_dim) if labels else None
    save_model(out, model, meta={"name": name}, label_priors=priors)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
