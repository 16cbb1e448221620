"""Sampling latency: 16 shapes at 2562 vertices each from a warm ModelService, as decoded patches and as the
closed meshes the default surface gives (backend/surface.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from backend.serving.service import ModelService
from bench.common import machine, median_time

DEFAULT = Path(__file__).resolve().parent.parent / "models" / "base"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, default=DEFAULT)
    args = parser.parse_args()
    service = ModelService("cpu")
    service.load(args.model)
    print(f"machine: {machine()}")
    for surface in ("patches", "auto"):
        t, times = median_time(lambda: service.sample(16, seed=0, resolution=2562, surface=surface), repeats=9,
                               warmup=2)
        print(f"sample 16 x 2562 vertices, warm, surface={surface}: {t * 1000:.0f} ms (median of 9: "
              f"{', '.join(f'{x * 1000:.0f}' for x in times)} ms)")


if __name__ == "__main__":
    main()
