"""scripts.corpus.cap: at most N meshes per category, reproducible, and a smaller cap is a subset."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.corpus.cap import capped


def _split(root: Path) -> Path:
    for category, n in (("tree", 7), ("chair", 2)):
        (root / category).mkdir(parents=True)
        for i in range(n):
            (root / category / f"{category}-{i}.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    return root


def test_cap_limits_each_category_and_smaller_caps_are_subsets(tmp_path: Path) -> None:
    src = _split(tmp_path / "src")
    assert capped(src, tmp_path / "c5", 5) == {"chair": 2, "tree": 5}
    assert capped(src, tmp_path / "c3", 3) == {"chair": 2, "tree": 3}
    five = {p.name for p in (tmp_path / "c5" / "tree").iterdir()}
    three = {p.name for p in (tmp_path / "c3" / "tree").iterdir()}
    assert three < five
    capped(src, tmp_path / "c5", 5)  # rerun replaces the copy with the same choice
    assert {p.name for p in (tmp_path / "c5" / "tree").iterdir()} == five
    assert len(list((src / "tree").iterdir())) == 7  # the source is never modified


def test_bad_cap_is_an_error_naming_the_option(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--per-category"):
        capped(_split(tmp_path / "src"), tmp_path / "out", 0)
