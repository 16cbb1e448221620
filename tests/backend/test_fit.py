"""Request-time fitting (backend/fit.py through ModelService): each mode is more faithful than the one
before, the loaded model never changes, progress comes every step, cancel stops within a step, seeds
repeat, bad parameters are refused naming the parameter, interpolate/variations use the latent fit."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh

from backend.data.meshio import Mesh
from backend.errors import ConfigError
from backend.fit import FitCancelled, FitSchedule
from backend.limits import DEFAULT_FIT_STEPS, MAX_FIT_STEPS
from backend.serving.service import ModelService

LATENT_STEPS, FULL_STEPS = 60, 90


def ring_on_block() -> Mesh:
    """A torus standing on a flat block, placed off-centre and scaled: no model here has seen it."""
    ring = trimesh.creation.torus(major_radius=1.0, minor_radius=0.25, major_sections=24, minor_sections=8)
    ring.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0]))
    ring.apply_translation([0.0, 0.0, 1.25])
    block = trimesh.creation.box(extents=(2.0, 0.6, 0.3))
    both = trimesh.util.concatenate([ring, block])
    return Mesh(np.asarray(both.vertices) * 7.0 + np.array([30.0, -4.0, 2.0]), np.asarray(both.faces))


@pytest.fixture(scope="module")
def three_modes(service: ModelService) -> dict[str, tuple[Mesh, float, list[dict]]]:
    """Each mode's reconstruction of ring_on_block, its Chamfer x1e-3 and its progress events."""
    out = {}
    for mode, steps in (("encoder", None), ("latent", LATENT_STEPS), ("full", FULL_STEPS)):
        events: list[dict] = []
        mesh, cd = service.reconstruct(ring_on_block(), resolution=162, fit=mode, steps=steps,
                                       progress=events.append)
        out[mode] = (mesh, cd, events)
    return out


def test_each_mode_is_closer_to_the_input_than_the_one_before(three_modes: dict) -> None:
    encoder, latent, full = (three_modes[m][1] for m in ("encoder", "latent", "full"))
    # The runs are deterministic, so a 10 % margin is far above any rounding in the Chamfer estimate; a
    # random tiny decoder responds weakly to its code (about -15 % in 60 steps) and strongly to its weights.
    assert latent < 0.9 * encoder, (encoder, latent)
    assert full < 0.5 * latent, (latent, full)


def test_fitted_reconstruction_stays_in_the_input_frame(three_modes: dict) -> None:
    src = ring_on_block().vertices
    centre, radius = (src.min(0) + src.max(0)) / 2, np.linalg.norm(np.ptp(src, axis=0)) / 2
    for mode in ("latent", "full"):
        mesh = three_modes[mode][0]
        assert mesh.vertices.shape == (162, 3) and np.isfinite(mesh.vertices).all()
        assert np.linalg.norm((mesh.vertices.min(0) + mesh.vertices.max(0)) / 2 - centre) < 0.5 * radius


def test_progress_comes_every_step_with_phases(three_modes: dict) -> None:
    assert three_modes["encoder"][2] == []
    latent = three_modes["latent"][2]
    assert [e["step"] for e in latent] == list(range(1, len(latent) + 1))
    assert {e["phase"] for e in latent} == {"latent"} and all(e["steps"] == LATENT_STEPS for e in latent)
    full = three_modes["full"][2]
    phases = [e["phase"] for e in full]
    assert phases[0] == "latent" and phases[-1] == "full" and phases == sorted(phases, key=["latent", "full"].index)
    assert all(e["chamfer"] > 0 and e["chamfer"] == pytest.approx(e["loss"] * 1e3) for e in full)


def test_full_fit_leaves_the_loaded_weights_bit_identical(service: ModelService) -> None:
    model = service._require().model
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    service.reconstruct(ring_on_block(), resolution=42, fit="full", steps=12)
    after = model.state_dict()
    assert before.keys() == after.keys()
    for key, value in before.items():
        assert torch.equal(value, after[key]), key
    assert all(p.grad is None for p in model.parameters())
    assert not model.training


def test_fits_repeat_exactly(service: ModelService) -> None:
    a, cd_a = service.reconstruct(ring_on_block(), resolution=42, fit="full", steps=10)
    b, cd_b = service.reconstruct(ring_on_block(), resolution=42, fit="full", steps=10)
    np.testing.assert_array_equal(a.vertices, b.vertices)
    assert cd_a == cd_b


@pytest.mark.parametrize("mode", ["latent", "full"])
def test_cancel_stops_within_one_step(service: ModelService, mode: str) -> None:
    cancel = threading.Event()
    events: list[dict] = []

    def progress(event: dict) -> None:
        events.append(event)
        if event["step"] == 5:
            cancel.set()

    with pytest.raises(FitCancelled, match="before step 6 of 500"):
        service.reconstruct(ring_on_block(), resolution=42, fit=mode, steps=500, progress=progress, cancel=cancel)
    assert len(events) == 5
    assert len(service.sample(1, resolution=42)) == 1  # the service is free again


def test_early_stopping_ends_a_phase_that_stopped_improving(service: ModelService) -> None:
    events: list[dict] = []
    lazy = FitSchedule(latent_lr=0.0, patience=5)  # a zero learning rate cannot improve anything
    service.reconstruct(ring_on_block(), resolution=42, fit="latent", steps=200, progress=events.append,
                        schedule=lazy)
    assert 5 <= len(events) < 200


@pytest.mark.parametrize("kwargs,name", [
    (dict(fit="best"), "fit"), (dict(fit=None), "fit"), (dict(fit="full", steps=0), "steps"),
    (dict(fit="latent", steps=MAX_FIT_STEPS + 1), "steps"), (dict(fit="full", steps=2.5), "steps"),
    (dict(fit="full", steps=True), "steps"),
])
def test_bad_fit_parameters_are_refused(service: ModelService, kwargs: dict, name: str) -> None:
    with pytest.raises(ConfigError, match=f"^{name} must be"):
        service.reconstruct(ring_on_block(), **kwargs)


def test_shared_decoder_methods_refuse_a_full_fit(service: ModelService, prior_service: ModelService) -> None:
    with pytest.raises(ConfigError, match="^fit must be one of encoder, latent"):
        service.interpolate(ring_on_block(), ring_on_block(), fit="full")
    with pytest.raises(ConfigError, match="^fit must be one of encoder, latent"):
        prior_service.variations(ring_on_block(), fit="full")
    with pytest.raises(ConfigError, match="^fit_steps must be"):
        prior_service.variations(ring_on_block(), fit="latent", fit_steps=0)


def test_interpolate_ends_are_the_latent_fits(service: ModelService) -> None:
    a = ring_on_block()
    b = Mesh(trimesh.creation.box(extents=(1.0, 2.0, 3.0)).vertices * 2.0, trimesh.creation.box().faces)
    events: list[dict] = []
    morph = service.interpolate(a, b, steps=3, resolution=42, fit="latent", fit_steps=8, progress=events.append)
    rec_a, _ = service.reconstruct(a, resolution=42, fit="latent", steps=8)
    rec_b, _ = service.reconstruct(b, resolution=42, fit="latent", steps=8)
    enc_a, _ = service.reconstruct(a, resolution=42)
    np.testing.assert_allclose(morph[0].vertices, rec_a.vertices, atol=1e-4)
    np.testing.assert_allclose(morph[-1].vertices, rec_b.vertices, atol=1e-4)
    assert not np.allclose(morph[0].vertices, enc_a.vertices, atol=1e-4)
    assert [e["step"] for e in events] == list(range(1, 17)) and {e["steps"] for e in events} == {16}


def test_variations_centre_on_the_latent_fit(prior_service: ModelService) -> None:
    still = prior_service.variations(ring_on_block(), count=2, spread=0.0, resolution=42, fit="latent", fit_steps=8)
    rec, _ = prior_service.reconstruct(ring_on_block(), resolution=42, fit="latent", steps=8)
    np.testing.assert_allclose(still[0].vertices, rec.vertices, atol=1e-4)


def test_default_is_one_encoder_pass(service: ModelService) -> None:
    default, cd_default = service.reconstruct(ring_on_block(), resolution=42)
    encoder, cd_encoder = service.reconstruct(ring_on_block(), resolution=42, fit="encoder")
    np.testing.assert_array_equal(default.vertices, encoder.vertices)
    assert cd_default == cd_encoder and DEFAULT_FIT_STEPS["encoder"] == 0


def test_focus_weights_favour_targets_the_output_misses() -> None:
    from backend.fit import _focus_weights

    target = torch.tensor([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.05]])
    decoded = torch.tensor([[[0.0, 0.0, 0.0], [0.1, 0.0, 0.0]]])
    p = _focus_weights(target, decoded, focus=0.5)
    assert p.sum() == pytest.approx(1.0) and p.argmax() == 2 and (p > 0).all()
    np.testing.assert_allclose(_focus_weights(target[:2], decoded, focus=0.5), [0.5, 0.5])


def test_focus_sampling_fits_and_repeats(service: ModelService) -> None:
    focused = FitSchedule(focus=0.5, focus_every=3)
    a, cd_a = service.reconstruct(ring_on_block(), resolution=42, fit="full", steps=12, schedule=focused)
    b, cd_b = service.reconstruct(ring_on_block(), resolution=42, fit="full", steps=12, schedule=focused)
    plain, _ = service.reconstruct(ring_on_block(), resolution=42, fit="full", steps=12)
    np.testing.assert_array_equal(a.vertices, b.vertices)
    assert cd_a == cd_b and not np.array_equal(a.vertices, plain.vertices)


def test_fit_adam_matches_torch_adam() -> None:
    from backend.fit import _Adam

    torch.manual_seed(0)
    ours = torch.randn(5, 3, requires_grad=True)
    ref = ours.detach().clone().requires_grad_(True)
    w = torch.randn(3)
    opt_ours, opt_ref = _Adam([{"params": [ours], "lr": 0.02}]), torch.optim.Adam([ref], lr=0.02)
    for _ in range(50):
        for p, opt in ((ours, opt_ours), (ref, opt_ref)):
            opt.zero_grad()
            ((p @ w).sin().sum() + p.square().sum()).backward()
            opt.step()
    # Same arithmetic in a different order: float32 rounding (~1e-7 a step) over 50 steps stays below 1e-5.
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-5)
