"""A model folder is something users share: a crafted config.json must be refused before anything is allocated.

The checksum covers only the weights, so editing config.json alone keeps it valid. Sizes are bounded, and
the config's tensor shapes are compared with the weights file's header before a single tensor is built.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from backend.checkpoints import CONFIG_FILE, load_model
from backend.errors import CheckpointError, ConfigError
from backend.model import MAX_PARAMETERS, ModelConfig

REPO = Path(__file__).resolve().parents[2]


def _crafted(folder: Path, tiny_model_dir: Path, **model: object) -> Path:
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        (folder / name).write_bytes((tiny_model_dir / name).read_bytes())
    config = json.loads((folder / CONFIG_FILE).read_text())
    config["model"].update(model)
    (folder / CONFIG_FILE).write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize("field, value, limit", [("decoder_width", 200_000, 4096), ("patches", 2000, 64),
                                                 ("latent_dim", 10**9, 4096), ("decoder_layers", 500, 16)])
def test_sizes_beyond_sane_bounds_are_refused_naming_the_field(tiny_model_dir: Path, tmp_path: Path,
                                                               field: str, value: int, limit: int) -> None:
    folder = _crafted(tmp_path / "crafted", tiny_model_dir, **{field: value})
    with pytest.raises(CheckpointError, match=rf"config\.json: invalid model config \({field} must be at most "
                                              rf"{limit}, got {value}\)"):
        load_model(folder)


def test_encoder_widths_are_bounded(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = _crafted(tmp_path / "crafted", tiny_model_dir, encoder_widths=[16, 1_000_000])
    with pytest.raises(CheckpointError, match="encoder_widths must each be at most 4096"):
        load_model(folder)


def test_a_huge_network_within_each_bound_is_refused_by_its_parameter_count(tiny_model_dir: Path,
                                                                           tmp_path: Path) -> None:
    folder = _crafted(tmp_path / "crafted", tiny_model_dir, patches=64, decoder_width=4096, decoder_layers=16)
    with pytest.raises(CheckpointError, match=r"would have [\d,]+ parameters, more than the limit of "
                                              rf"{MAX_PARAMETERS:,}"):
        load_model(folder)


def test_shapes_that_differ_from_the_weights_are_refused_before_building_the_network(tiny_model_dir: Path,
                                                                                      tmp_path: Path) -> None:
    """Within every bound (8 decoders of 6 x 1024-wide layers, 50 M floats = 200 MB) but not what the weights
    hold: the refusal must come from the header comparison, so the child's peak memory barely moves."""
    folder = _crafted(tmp_path / "crafted", tiny_model_dir, patches=8, decoder_width=1024, decoder_layers=6)
    network_bytes = 8 * 6 * 1024 * 1024 * 4
    script = ("import resource, sys\n"
              "from backend.checkpoints import load_model\n"
              "from backend.errors import CheckpointError\n"
              "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024\n"
              "try:\n"
              "    load_model(sys.argv[1])\n"
              "except CheckpointError as exc:\n"
              "    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before)\n"
              "    print(exc)\n")
    result = subprocess.run([sys.executable, "-c", script, str(folder)], cwd=REPO, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr[-2000:]
    grown, message = result.stdout.split("\n", 1)
    assert "weights do not fit the model config" in message and "shape mismatch" in message
    assert int(grown) < network_bytes // 4


def test_training_options_get_the_same_bounds() -> None:
    with pytest.raises(ConfigError, match="decoder_width must be at most 4096, got 200000"):
        ModelConfig(decoder_width=200_000)
