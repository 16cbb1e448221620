"""Real-world sizes (issue 27): recorded by training and record-sizes, applied to samples, unit size kept
for models without them (backend/sizes.py, service.sample, cli record-sizes)."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trimesh

from backend.checkpoints import CONFIG_FILE, WEIGHTS_FILE, save_model
from backend.cli import main
from backend.data.meshio import Mesh, save_mesh
from backend.errors import CheckpointError
from backend.inference import sample_latents
from backend.prior import GaussianMixturePrior, nearest_labels
from backend.serving.service import ModelService
from backend.sizes import Sizes, at_size, read_sizes, typical_sizes

# Vertices are float64 until the wire; a diagonal of a few metres is exact to ~1e-15 relative.
RTOL = 1e-9


def diagonal(v: np.ndarray) -> float:
    return float(np.linalg.norm(np.ptp(v, axis=0)))


# ------------------------------------------------------------------------------------------ pure functions


def test_typical_sizes_are_per_axis_medians_overall_and_per_label() -> None:
    extents = np.array([[1, 2, 3], [3, 2, 1], [2, 2, 2], [10, 20, 30], [np.nan, 1, 1], [0, 1, 1]], dtype=np.float32)
    labels = ["a", "a", "a", "b", "b", "c"]
    sizes = typical_sizes(extents, labels)
    assert sizes == {"overall": [2.5, 2.0, 2.5], "labels": {"a": [2.0, 2.0, 2.0], "b": [10.0, 20.0, 30.0]},
                     "shapes": 4}  # NaN and zero extents left out; "c" has no measurable shape
    assert typical_sizes(np.full((2, 3), np.nan), ["a", "b"]) is None


def test_read_sizes_gives_a_label_its_own_size_and_others_the_overall_one() -> None:
    sizes = read_sizes({"sizes": {"overall": [1, 2, 3], "labels": {"chair": [0.5, 0.5, 0.9]}}}, "m/config.json")
    assert sizes == Sizes((1.0, 2.0, 3.0), {"chair": (0.5, 0.5, 0.9)})
    assert sizes.of("chair") == (0.5, 0.5, 0.9) and sizes.of("table") == sizes.of(None) == (1.0, 2.0, 3.0)
    assert read_sizes({}, "m/config.json") is None


@pytest.mark.parametrize("raw", [[1, 2, 3], {"overall": [1, 2]}, {"overall": [1, 2, -3]},
                                 {"overall": [1, 2, 3], "labels": {"a": [1, "2", 3]}}, {"overall": [1, 2, True]},
                                 {"overall": [1, 2, 3], "labels": []}])
def test_malformed_sizes_are_refused_naming_the_file(raw: Any) -> None:
    with pytest.raises(CheckpointError, match=r"m/config.json: meta\.sizes"):
        read_sizes({"sizes": raw}, "m/config.json")


def test_at_size_keeps_proportions_and_stands_on_the_floor() -> None:
    rng = np.random.default_rng(0)
    v = rng.uniform(-1, 1, (50, 3)) * [0.3, 0.5, 1.0]
    out = at_size(v, (0.5, 0.6, 0.9))
    assert diagonal(out) == pytest.approx(float(np.linalg.norm([0.5, 0.6, 0.9])), rel=RTOL)
    assert out[:, 2].min() == 0.0
    lo, hi = out.min(axis=0), out.max(axis=0)
    np.testing.assert_allclose((lo + hi)[:2], 0.0, atol=1e-12)
    ratio = np.ptp(out, axis=0) / np.ptp(v, axis=0)
    np.testing.assert_allclose(ratio, ratio[0], rtol=RTOL)  # one uniform scale


def test_nearest_labels_picks_the_prior_that_fits_each_code_best(make_tiny_prior) -> None:
    low = GaussianMixturePrior(np.ones(1), np.full((1, 16), -2.0), np.full((1, 16), 0.3))
    high = GaussianMixturePrior(np.ones(1), np.full((1, 16), 2.0), np.full((1, 16), 0.3))
    z = np.concatenate([np.full((2, 16), -1.9), np.full((1, 16), 2.2)])
    assert nearest_labels(z, {"low": low, "high": high}) == ["low", "low", "high"]
    assert nearest_labels(z, {}) == [None, None, None]
    full = make_tiny_prior(0)  # full covariances (an autoencoder's EM mixture) work as well
    assert nearest_labels(z, {"low": low, "full": full})[2] == "full"


# ------------------------------------------------------------------------------------ training records them


def test_a_training_run_records_its_families_sizes(trained_run: dict) -> None:
    meta = json.loads((trained_run["out"] / CONFIG_FILE).read_text())["meta"]
    sizes = meta["sizes"]
    assert sorted(sizes["labels"]) == ["mug", "sword"] and sizes["shapes"] == meta["train_shapes"]
    sword, mug = sizes["labels"]["sword"], sizes["labels"]["mug"]
    assert 0.5 < sword[2] < 2.0 and 0.03 < mug[2] < 0.3  # the procedural families are built in metres
    assert mug[2] < sizes["overall"][2] < sword[2]


def test_a_fine_tune_records_the_sizes_of_its_own_meshes(trained_run: dict, tmp_path: Path) -> None:
    from backend.training.config import TrainConfig
    from backend.training.loop import run

    data = _boxes(tmp_path / "data")
    cfg = TrainConfig(out=str(tmp_path / "ft"), init=str(trained_run["out"]), data=str(data), epochs=1,
                      batch_size=4, points=128, sheet_every=0, device="cpu", prior_components=2, val_fraction=0.2,
                      cache_dir=str(tmp_path / "cache"))
    assert run(cfg)["state"] == "finished"
    sizes = json.loads((tmp_path / "ft" / CONFIG_FILE).read_text())["meta"]["sizes"]
    assert sorted(sizes["labels"]) == ["big", "small"]  # not the base's sword and mug
    assert sizes["labels"]["small"][1:] == [0.4, 0.9] and sizes["labels"]["big"][:2] == [4.0, 2.0]


# --------------------------------------------------------------------------------------- samples at size


@pytest.fixture(scope="module")
def sized_model(tmp_path_factory: pytest.TempPathFactory, make_tiny_model) -> Path:
    """A tiny model with two well-separated label priors ("low", "high") and sizes for each (codes where the
    random tiny decoder makes non-degenerate shapes)."""
    mean = {"low": 0.5, "high": 2.0}
    label_priors = {k: GaussianMixturePrior(np.ones(1), np.full((1, 16), m), np.full((1, 16), 0.3))
                    for k, m in mean.items()}
    prior = GaussianMixturePrior(np.full(2, 0.5), np.stack([np.full(16, 0.5), np.full(16, 2.0)]),
                                 np.full((2, 16), 0.3))
    sizes = {"overall": [2.0, 1.0, 1.5], "labels": {"low": [0.5, 0.4, 0.9], "high": [20.0, 15.0, 12.0]},
             "shapes": 20}
    return save_model(tmp_path_factory.mktemp("models") / "sized", make_tiny_model(0), prior=prior,
                      label_priors=label_priors, meta={"name": "sized", "default_prior": "gmm", "sizes": sizes})


@pytest.fixture(scope="module")
def sized_service(sized_model: Path) -> ModelService:
    svc = ModelService("cpu")
    svc.load(sized_model)
    return svc


def test_a_label_sample_comes_out_at_the_labels_size_on_the_floor(sized_service: ModelService) -> None:
    for label, size in (("low", [0.5, 0.4, 0.9]), ("high", [20.0, 15.0, 12.0])):
        meshes = sized_service.sample(3, seed=1, resolution=100, label=label)
        for m in meshes:
            assert diagonal(m.vertices) == pytest.approx(float(np.linalg.norm(size)), rel=RTOL)
            assert m.vertices[:, 2].min() == 0.0
    assert sized_service.size_applied("real") == "real"


def test_without_a_label_each_sample_gets_its_nearest_familys_size(sized_service: ModelService) -> None:
    meshes = sized_service.sample(6, seed=3, resolution=100)
    lm = sized_service._loaded
    z = sample_latents(6, 3, 16, kind="auto", prior=lm.prior, default="gmm")
    expected = {"low": np.linalg.norm([0.5, 0.4, 0.9]), "high": np.linalg.norm([20.0, 15.0, 12.0])}
    families = ["low" if row.mean() < 1.25 else "high" for row in z]
    assert len(set(families)) == 2  # the seed draws from both components
    for m, family in zip(meshes, families):
        assert diagonal(m.vertices) == pytest.approx(float(expected[family]), rel=RTOL)


def test_unit_size_is_the_unit_ball_as_before(sized_service: ModelService) -> None:
    unit = sized_service.sample(2, seed=5, resolution=100, label="low", size="unit")
    real = sized_service.sample(2, seed=5, resolution=100, label="low")
    assert max(np.linalg.norm(m.vertices, axis=1).max() for m in unit) < 5.0
    for u, r in zip(unit, real):
        np.testing.assert_allclose(at_size(u.vertices, (0.5, 0.4, 0.9)), r.vertices, rtol=1e-12, atol=1e-12)


def test_a_model_without_sizes_samples_at_unit_size_and_says_so_once(
        tiny_model_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    svc = ModelService("cpu")
    with caplog.at_level(logging.INFO, logger="backend.serving.service"):
        svc.load(tiny_model_dir)
    said = [r.getMessage() for r in caplog.records if "records no typical sizes" in r.getMessage()]
    assert len(said) == 1 and "unit size" in said[0]
    real, unit = svc.sample(2, seed=0, resolution=100), svc.sample(2, seed=0, resolution=100, size="unit")
    for a, b in zip(real, unit):
        np.testing.assert_array_equal(a.vertices, b.vertices)
    assert svc.size_applied("real") == "unit" and svc.info["sizes"] is None


# -------------------------------------------------------------------------------------------- record-sizes


def _boxes(root: Path) -> Path:
    """Boxes in two label folders: 'small' about 0.5 x 0.4 x 0.9 m, 'big' 4 x 2 x 3 m (medians known)."""
    for i in range(3):
        for label, e in (("small", (0.5 + 0.1 * (i - 1), 0.4, 0.9)), ("big", (4.0, 2.0, 3.0 + (i - 1)))):
            box = trimesh.creation.box(extents=e)
            (root / label).mkdir(parents=True, exist_ok=True)
            save_mesh(root / label / f"{i}.obj", Mesh(box.vertices, box.faces))
    return root


def test_record_sizes_adds_sizes_to_an_old_model_without_touching_its_weights(
        tmp_path: Path, make_tiny_model, capsys: pytest.CaptureFixture[str]) -> None:
    model = save_model(tmp_path / "old", make_tiny_model(0), meta={"name": "old"})
    weights = (model / WEIGHTS_FILE).read_bytes()
    data = _boxes(tmp_path / "data")
    argv = ["record-sizes", "--model", str(model), "--data", str(data), "--cache-dir", str(tmp_path / "cache")]
    assert main(argv) == 0
    config = json.loads((model / CONFIG_FILE).read_text())
    sizes = config["meta"]["sizes"]
    assert sizes["labels"] == {"big": [4.0, 2.0, 3.0], "small": [0.5, 0.4, 0.9]} and sizes["shapes"] == 6
    assert (model / WEIGHTS_FILE).read_bytes() == weights
    assert config["weights_sha256"] == hashlib.sha256(weights).hexdigest() and config["meta"]["name"] == "old"
    svc = ModelService("cpu")
    svc.load(model)
    assert svc.size_applied("real") == "real"
    capsys.readouterr()
    assert main(argv) == 2
    assert "already records typical sizes; pass --force" in capsys.readouterr().err
    assert main([*argv, "--force"]) == 0


@pytest.mark.parametrize("extra,message", [
    (["--data", "nowhere"], "nowhere: not a folder; pass --data"),
    ([], "does not record its training data; pass --data"),
])
def test_record_sizes_without_usable_data_is_a_clear_error(
        tmp_path: Path, make_tiny_model, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    model = save_model(tmp_path / "old", make_tiny_model(0), meta={"name": "old"})
    before = (model / CONFIG_FILE).read_bytes()
    assert main(["record-sizes", "--model", str(model), *extra]) == 2
    assert message in capsys.readouterr().err
    assert (model / CONFIG_FILE).read_bytes() == before


def test_cli_sample_writes_real_sizes_and_notes_a_model_without_them(
        tmp_path: Path, sized_model: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "s"
    assert main(["sample", "--model", str(sized_model), "--n", "1", "--label", "high", "--resolution", "100",
                 "--out", str(out), "--device", "cpu"]) == 0
    v = trimesh.load(out / "sample_000.obj", process=False).vertices
    # OBJ text keeps about 8 significant digits
    assert diagonal(v) == pytest.approx(float(np.linalg.norm([20.0, 15.0, 12.0])), rel=1e-6)
    assert "note:" not in capsys.readouterr().err
    assert main(["sample", "--model", str(tiny_model_dir), "--n", "1", "--resolution", "100", "--out",
                 str(tmp_path / "u"), "--device", "cpu"]) == 0
    assert "records no typical sizes, so the samples are at unit size" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["sample", "--size", "huge", "--out", str(tmp_path / "x")])
    assert exit_.value.code == 2 and "--size: invalid choice: 'huge'" in capsys.readouterr().err
