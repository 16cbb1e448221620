"""`python -m scripts.corpus`: build the real-mesh corpus, then lay out the committed split (see --help)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .build import build
from .fetch import FetchError
from .manifest import mesh_records, write_corpus_manifest
from .sources import SOURCES
from .split import SPLIT_FILE, load_split, make_split, materialise, save_split

REPO = Path(__file__).resolve().parents[2]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="python -m scripts.corpus", description=__doc__)
    p.add_argument("--out", type=Path, default=REPO / "data" / "corpus",
                   help="corpus folder (default: data/corpus in the repository, ignored by git)")
    p.add_argument("--cache", type=Path, help="downloaded and unpacked packages (default: OUT/../debian-cache)")
    p.add_argument("--sources", default=",".join(SOURCES),
                   help=f"comma-separated packages, in priority order (default: {','.join(SOURCES)})")
    p.add_argument("--limit", type=int, help="at most this many candidates per source (a quick trial)")
    p.add_argument("--new-split", metavar="CATEGORIES",
                   help="recompute the split with these held-out categories and write it to "
                        "--split (maintainers only: everyone else uses the committed one)")
    p.add_argument("--seed", type=int, default=0, help="seed of a --new-split")
    p.add_argument("--split", type=Path, default=SPLIT_FILE, help="the split file (default: the committed one)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Build, write manifests, print counts per category, and lay out the split."""
    args = parse_args(argv)
    sources = [s.strip() for s in args.sources.split(",") if s.strip()]
    unknown = [s for s in sources if s not in SOURCES]
    if unknown:
        print(f"error: --sources: unknown package(s) {', '.join(unknown)}; known: {', '.join(SOURCES)}",
              file=sys.stderr)
        return 2
    out = args.out.expanduser().resolve()
    cache = (args.cache or out.parent / "debian-cache").expanduser().resolve()
    t0 = time.monotonic()
    try:
        counts = build(out, cache, sources, args.limit)
    except FetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = write_corpus_manifest(out)
    records = list(mesh_records(out))
    print(f"this run: {counts['written']} meshes written, {counts['skipped']} candidates skipped, "
          f"{counts['already_done']} already done ({time.monotonic() - t0:.0f} s)")
    print(f"corpus: {summary['meshes']} meshes in {len(summary['per_category'])} categories")
    for category, n in sorted(summary["per_category"].items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {category:<14} {n:5d}")
    print("skipped: " + ", ".join(f"{k} {v}" for k, v in summary["skipped"].items()))
    if args.new_split:
        try:
            doc = make_split(records, [c.strip() for c in args.new_split.split(",") if c.strip()], args.seed)
        except ValueError as exc:
            print(f"error: --new-split: {exc}", file=sys.stderr)
            return 2
        save_split(doc, args.split)
        print(f"wrote a new split to {args.split}")
    if not args.split.is_file():
        print(f"no split file {args.split}; pass --new-split CATEGORY to make one", file=sys.stderr)
        return 0
    doc = load_split(args.split)
    listed = {i for group in ("base", "transfer") for part in doc[group].values() for i in part}
    unlisted = [r["id"] for r in records if r["id"] not in listed]
    done = materialise(out, records, doc)
    print(f"split (held out: {', '.join(doc['held_out'])}): " + json.dumps(
        {g: {p: len(doc[g][p]) for p in doc[g] if p in ("train", "val", "test")} for g in ("base", "transfer")})
        + f" -> {out / 'split'}")
    if done["missing"] or unlisted:
        print(f"warning: {done['missing']} split ids are not in this corpus and {len(unlisted)} corpus meshes "
              f"are in no split (a different package version?)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
