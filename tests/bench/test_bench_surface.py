"""bench/bench_surface.py: the shapes it measures are the raw patches, spread over the labels as asked."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from backend.surface import is_closed_manifold
from bench.bench_surface import main, spread


def test_spread_gives_every_label_its_share() -> None:
    assert spread(200, 39) == [6] * 5 + [5] * 34
    assert spread(3, 5) == [1, 1, 1, 0, 0]
    assert sum(spread(200, 41)) == 200


def test_samples_are_the_raw_patches_in_the_unit_ball(tmp_path: Path) -> None:
    # the service closes and sizes samples by default; the bench must measure what the closing gets
    assert main(["shapes", "--out", str(tmp_path / "s.npz"), "--samples", "2", "--resolution", "400"]) == 0
    data = np.load(tmp_path / "s.npz")
    names = [str(n) for n in data["names"]]
    assert len(names) == 2 and len({n.split("/")[1] for n in names}) == 2
    for name in names:
        v, f = data[name + "/v"], data[name + "/f"]
        assert not is_closed_manifold(f)
        assert np.linalg.norm(v, axis=1).max() < 1.5
