"""The AtlasVAE network: a PointNet encoder giving a Gaussian posterior, and AtlasNet decoders.

In "vae" mode the encoder's mean and log-variance heads sit on a linear feature (before any ReLU, so
the mean can be negative); in "ae" mode the same network uses the mean head alone as a deterministic
code, which is the plain-autoencoder baseline.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn

from .errors import ConfigError
from .templates import TEMPLATE_KINDS, template_dim

MODES = ("vae", "ae")
# The posterior starts narrow (std 0.05) so early training sees near-exact codes, as an autoencoder
# would; the KL term then widens it only as far as beta pays for. Starting at std 1 makes the decoder
# learn to average neighbouring shapes, which is where blurry VAE reconstructions come from.
INITIAL_LOGVAR = -6.0
NORMS = ("batch", "none")
# Sane upper bounds: a model folder is shared between users and config.json is not covered by the weights'
# checksum, so a crafted size must be refused before anything is built. AtlasNet's largest reference
# network (25 square patches, 1024 wide) is 28.7 M parameters and fits well within each bound.
MAX_SIZES = {"patches": 64, "latent_dim": 4096, "decoder_width": 4096, "decoder_layers": 16}
MAX_ENCODER_WIDTH, MAX_ENCODER_LAYERS = 4096, 8
MAX_PARAMETERS = 200_000_000  # 800 MB of float32 weights


@dataclass(frozen=True)
class ModelConfig:
    """Architecture hyper-parameters; stored in every model folder's config.json."""

    mode: str = "vae"
    template: str = "sphere"
    patches: int = 1
    latent_dim: int = 128
    encoder_widths: tuple[int, ...] = (64, 128, 256)
    decoder_width: int = 256
    decoder_layers: int = 2
    norm: str = "batch"

    def __post_init__(self) -> None:
        widths = self.encoder_widths
        if not isinstance(widths, (tuple, list)) or not all(_is_int(w) for w in widths):
            raise ConfigError(f"encoder_widths must be a list of integers, got {widths!r}")
        object.__setattr__(self, "encoder_widths", tuple(int(w) for w in widths))
        for name in ("patches", "latent_dim", "decoder_width", "decoder_layers"):
            if not _is_int(getattr(self, name)):
                raise ConfigError(f"{name} must be an integer, got {getattr(self, name)!r}")
        if self.mode not in MODES:
            raise ConfigError(f"model mode must be one of {MODES}, got {self.mode!r}")
        if self.template not in TEMPLATE_KINDS:
            raise ConfigError(f"template must be one of {TEMPLATE_KINDS}, got {self.template!r}")
        if self.norm not in NORMS:
            raise ConfigError(f"norm must be one of {NORMS}, got {self.norm!r}")
        for name in ("patches", "latent_dim", "decoder_width"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.decoder_layers < 0 or not self.encoder_widths or min(self.encoder_widths) < 1:
            raise ConfigError("decoder_layers must be >= 0 and encoder_widths positive integers")
        for name, limit in MAX_SIZES.items():
            if getattr(self, name) > limit:
                raise ConfigError(f"{name} must be at most {limit}, got {getattr(self, name)}")
        if len(self.encoder_widths) > MAX_ENCODER_LAYERS or max(self.encoder_widths) > MAX_ENCODER_WIDTH:
            raise ConfigError(f"encoder_widths must each be at most {MAX_ENCODER_WIDTH}, at most "
                              f"{MAX_ENCODER_LAYERS} of them, got {list(self.encoder_widths)}")
        count = sum(math.prod(shape) for shape in expected_shapes(self).values())
        if count > MAX_PARAMETERS:
            raise ConfigError(f"this architecture would have {count:,} parameters, more than the limit of "
                              f"{MAX_PARAMETERS:,}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["encoder_widths"] = list(self.encoder_widths)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown model config keys: {', '.join(unknown)}")
        return cls(**data)

    @classmethod
    def atlasnet_reference(cls, mode: str = "ae") -> "ModelConfig":
        """AtlasNet's own default: 1 sphere, 1024-wide bottleneck, 512 hidden, 2 extra layers."""
        return cls(mode=mode, latent_dim=1024, encoder_widths=(64, 128, 1024), decoder_width=512,
                   decoder_layers=2)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _norm(kind: str, width: int) -> nn.Module:
    return nn.BatchNorm1d(width) if kind == "batch" else nn.Identity()


class PointwiseNorm(nn.Module):
    """Applies a 1-D norm over the channel axis of (B, N, C) tensors by folding B and N together."""

    def __init__(self, kind: str, width: int) -> None:
        super().__init__()
        self.norm = _norm(kind, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        normed: torch.Tensor = self.norm(x.reshape(b * n, c))  # nn.Module calls are typed Any
        return normed.reshape(b, n, c)


class PointNetEncoder(nn.Module):
    """Shared per-point MLP, max-pool, then a linear feature and the posterior heads."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        widths = (3, *cfg.encoder_widths)
        self.point_layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.point_norms = nn.ModuleList(PointwiseNorm(cfg.norm, w) for w in widths[1:])
        feat = widths[-1]
        self.fc = nn.Linear(feat, feat)
        self.fc_norm = _norm(cfg.norm, feat)
        self.mu = nn.Linear(feat, cfg.latent_dim)
        self.logvar = nn.Linear(feat, cfg.latent_dim) if cfg.mode == "vae" else None
        if self.logvar is not None:
            nn.init.zeros_(self.logvar.weight)
            nn.init.constant_(self.logvar.bias, INITIAL_LOGVAR)

    def forward(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = points
        for layer, norm in zip(self.point_layers, self.point_norms):
            x = torch.relu(norm(layer(x)))
        x = x.max(dim=1).values
        x = torch.relu(self.fc_norm(self.fc(x)))
        logvar = self.logvar(x).clamp(-12.0, 8.0) if self.logvar is not None else None
        return self.mu(x), logvar


class PatchDecoder(nn.Module):
    """One AtlasNet primitive: template point -> 3-D point, with the latent code added as a bias."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.inp = nn.Linear(template_dim(cfg.template), cfg.latent_dim)
        widths = (cfg.latent_dim, cfg.decoder_width, *([cfg.decoder_width] * cfg.decoder_layers))
        self.norms = nn.ModuleList(PointwiseNorm(cfg.norm, w) for w in widths)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.out = nn.Linear(widths[-1], 3)

    def forward(self, z: torch.Tensor, template: torch.Tensor) -> torch.Tensor:
        x = self.inp(template)[None] + z[:, None, :]
        x = torch.relu(self.norms[0](x))
        for layer, norm in zip(self.layers, self.norms[1:]):
            x = torch.relu(norm(layer(x)))
        points: torch.Tensor = self.out(x)  # nn.Module calls are typed Any
        return points


class AtlasVAE(nn.Module):
    """PointNet encoder + K AtlasNet patch decoders; encode, reparameterise, decode."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = PointNetEncoder(cfg)
        self.decoders = nn.ModuleList(PatchDecoder(cfg) for _ in range(cfg.patches))

    def encode(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, N, 3) unit-ball points -> posterior mean and log-variance (None in ae mode)."""
        posterior: tuple[torch.Tensor, torch.Tensor | None] = self.encoder(points)  # Module calls are typed Any
        return posterior

    def decode(self, z: torch.Tensor, template: torch.Tensor) -> torch.Tensor:
        """Latents (B, D) and template points (K, P, dim) -> surface points (B, K * P, 3)."""
        outs = [dec(z, template[k]) for k, dec in enumerate(self.decoders)]
        return torch.cat(outs, dim=1)

    def forward(self, points: torch.Tensor, template: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Reconstruct `points`: returns (decoded points, mu, logvar); samples z only in training."""
        mu, logvar = self.encode(points)
        z = mu
        if logvar is not None and self.training:
            z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        return self.decode(z, template), mu, logvar


def expected_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every state-dict tensor's shape for `cfg`, from a network built on the meta device (no memory used)."""
    with torch.device("meta"):
        model = AtlasVAE(cfg)
    return {name: tuple(t.shape) for name, t in model.state_dict().items()}
