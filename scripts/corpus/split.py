"""The fixed split: train / val / test by object, stratified by category, plus whole held-out categories.

Deterministic: within each category, objects are ordered by a seeded hash of their id and the first
fractions go to test and val, so the same corpus always gives the same split (and the order within a
category does not depend on which other objects exist). The split is committed as
scripts/corpus/split.json; `materialise` lays it out as folders per label (hard links to the corpus
meshes) that `python -m backend train/finetune/evaluate --data` reads.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

SPLIT_FILE = Path(__file__).resolve().parent / "split.json"
PARTS = ("train", "val", "test")
BASE_FRACTIONS = {"val": 0.1, "test": 0.1}
TRANSFER_FRACTIONS = {"val": 0.1, "test": 0.25}
MIN_HELD_OUT = 80
SPLIT_DIR = "split"


def _draw(seed: int, ident: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}\0{ident}".encode()).digest()[:8], "big")


def stratified(items: Iterable[tuple[str, str]], fractions: dict[str, float], seed: int) -> dict[str, list[str]]:
    """{part: sorted ids} from (id, category) pairs: per category, round(fraction * n) to val and test.

    A category of fewer than 3 objects goes wholly to train; otherwise val and test get at least one each.
    """
    by_cat: dict[str, list[str]] = {}
    for ident, category in items:
        by_cat.setdefault(category, []).append(ident)
    parts: dict[str, list[str]] = {p: [] for p in PARTS}
    for category in sorted(by_cat):
        ids = sorted(by_cat[category], key=lambda i: (_draw(seed, i), i))
        n = len(ids)
        n_test = 0 if n < 3 else max(1, round(fractions["test"] * n))
        n_val = 0 if n < 3 else max(1, round(fractions["val"] * n))
        parts["test"] += ids[:n_test]
        parts["val"] += ids[n_test:n_test + n_val]
        parts["train"] += ids[n_test + n_val:]
    return {p: sorted(v) for p, v in parts.items()}


def make_split(records: list[dict[str, Any]], held_out: list[str], seed: int = 0) -> dict[str, Any]:
    """The split document: 'base' over every category but the held-out ones, 'transfer' over those."""
    counts = Counter(r["category"] for r in records)
    for category in held_out:
        if counts[category] < MIN_HELD_OUT:
            raise ValueError(f"held-out category {category!r} has {counts[category]} meshes; "
                             f"a transfer measurement needs at least {MIN_HELD_OUT}")
    base = [(r["id"], r["category"]) for r in records if r["category"] not in held_out]
    transfer = [(r["id"], r["category"]) for r in records if r["category"] in held_out]
    label = {r["id"]: r["category"] for r in records}
    doc: dict[str, Any] = {"seed": seed, "held_out": sorted(held_out), "base_fractions": BASE_FRACTIONS,
                           "transfer_fractions": TRANSFER_FRACTIONS,
                           "base": stratified(base, BASE_FRACTIONS, seed),
                           "transfer": stratified(transfer, TRANSFER_FRACTIONS, seed)}
    doc["counts"] = {group: {part: dict(sorted(Counter(label[i] for i in doc[group][part]).items()))
                             for part in PARTS} for group in ("base", "transfer")}
    return doc


def save_split(doc: dict[str, Any], path: Path = SPLIT_FILE) -> None:
    """Write the split with one id per line, so a change shows up as a readable diff."""
    path.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def load_split(path: Path = SPLIT_FILE) -> dict[str, Any]:
    """The committed split document."""
    return json.loads(path.read_text(encoding="utf-8"))


def materialise(out: Path, records: list[dict[str, Any]], doc: dict[str, Any]) -> dict[str, int]:
    """out/split/<group>/<part>/<category>/<id>.obj as hard links (copies where links fail); returns counts.

    Corpus meshes the split does not list are reported by the caller; listed ids missing from the corpus
    are counted under 'missing'.
    """
    by_id = {r["id"]: r for r in records}
    root = out / SPLIT_DIR
    if root.exists():
        shutil.rmtree(root)
    counts = {"linked": 0, "missing": 0}
    for group in ("base", "transfer"):
        for part in PARTS:
            for ident in doc[group][part]:
                record = by_id.get(ident)
                if record is None:
                    counts["missing"] += 1
                    continue
                target = root / group / part / record["category"] / f"{ident}.obj"
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(out / record["file"], target)
                except OSError:
                    shutil.copyfile(out / record["file"], target)
                counts["linked"] += 1
    return counts
