"""The autoencoder-vs-VAE table: same data, same training budget, several ways of sampling.

Rows per family: autoencoder (reconstruction only); autoencoder decoder fed N(0, I) latents (the naive
first attempt); autoencoder with its fitted mixture; VAE with N(0, I); VAE with a mixture fitted by EM
to its posterior means (the previous default); VAE with its fitted prior (the aggregate posterior, see
backend/prior.py). Two reference rows bound what any prior can reach: fresh true shapes (the ideal,
about 50 % 1-NNA) and the VAE's reconstructions of its own training shapes (a perfect prior with this
decoder). Fitted priors are refitted here by the training code's own function, so --reuse measures the
current prior code on decoders trained earlier.

Reconstruction on the held-out test split (Chamfer x1e-3 at 2500 points); generation against the same
test shapes (2048 points, as many samples as references; fitted-prior rows averaged over the sampling
seeds, N(0, I) rows and novelty from the first seed). "novelty" is the median Chamfer from each
generated shape to its nearest *training* shape, divided by the same median for the test shapes: about 1
means samples are as far from the training set as unseen shapes are, well below 1 means copies.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import torch

from backend.checkpoints import is_model_folder, load_model, read_model_config
from backend.data.datasets import procedural_point_sets
from backend.device import DEVICE_CHOICES, resolve_device
from backend.errors import ConfigError
from backend.evaluate import GEN_POINTS
from backend.metrics import generation_metrics, pairwise_chamfer, reconstruction_metrics
from backend.prior import fit_gmm
from backend.inference import (decode_latents, encode_all, fit_priors, pick_points, reconstruct_points,
                               sample_latents)
from backend.training.config import TrainConfig
from backend.training.data import load_data
from backend.training.loop import run

SAMPLE_SEED = 1  # reference points and the reference rows; samples use --seeds


def train_config(family: str, mode: str, args: argparse.Namespace) -> TrainConfig:
    """One row's run: every row shares data, split, epochs and architecture; only the mode differs."""
    return TrainConfig.from_flat(dict(
        out=str(args.workdir / f"{family}_{mode}"), procedural=f"{family}:{args.shapes}", mode=mode,
        epochs=args.epochs, val_fraction=0.1, test_fraction=args.test_fraction, template=args.template,
        patches=args.patches, sheet_every=0, device=args.device, seed=0, force=True, beta=args.beta,
        batch_size=args.batch_size, prior_spread=args.prior_spread))


def train_and_eval(family: str, mode: str, args: argparse.Namespace) -> dict[str, Any]:
    """Train one row's model (one CPU thread, so rows can run side by side) and measure it."""
    torch.set_num_threads(args.threads)
    cfg = train_config(family, mode, args)
    device = resolve_device(args.device)
    result: dict[str, Any] = {}
    if not (args.reuse and finished(cfg.out)):
        t = time.perf_counter()
        run(cfg, progress=lambda e: None)
        result["train_s"] = time.perf_counter() - t
    data = load_data(cfg)
    test, train = data["test"].points, data["train"].points
    lm = load_model(cfg.out, device)
    result.update(reconstruction_metrics(*reconstruct_points(lm.model, test, device, count=2500)))
    refs = pick_points(test, GEN_POINTS, np.random.default_rng(SAMPLE_SEED))
    train_clouds = pick_points(train, GEN_POINTS, np.random.default_rng(SAMPLE_SEED + 1))
    ref_to_train = pairwise_chamfer(list(refs), list(train_clouds)).min(axis=1)
    fitted, _ = fit_priors(lm.model, data["train"], cfg, device)
    dim = lm.config.latent_dim
    samplers = {"normal": (lambda n, s: sample_latents(n, s, dim), args.seeds[:1]),
                "gmm": (lambda n, s: sample_latents(n, s, dim, "gmm", prior=fitted), args.seeds)}
    if mode == "vae":
        em = fit_gmm(encode_all(lm.model, train, device), cfg.prior_components, cfg.seed)
        samplers["em_gmm"] = (lambda n, s: sample_latents(n, s, dim, "gmm", prior=em), args.seeds)
    for prior, (sampler, seeds) in samplers.items():
        per_seed = []
        for seed in seeds:
            gen = decode_latents(lm.model, sampler(len(test), seed), device, count=GEN_POINTS, seed=seed + 1)
            per_seed.append(generation_metrics(gen, refs))
            if seed == seeds[0]:
                per_seed[0]["novelty"] = novelty(gen, train_clouds, ref_to_train)
        result[f"generation_{prior}"] = {k: float(np.mean([r[k] for r in per_seed if k in r])) for k in per_seed[0]}
        result[f"generation_{prior}"]["per_seed"] = per_seed
    if mode == "vae":
        pick = np.random.default_rng(SAMPLE_SEED).choice(len(train), len(test), replace=False)
        recon = decode_latents(lm.model, encode_all(lm.model, train[pick], device), device, count=GEN_POINTS)
        result["generation_train_recon"] = generation_metrics(recon, refs)
        fresh = procedural_point_sets([family], len(test), args.fresh_seed).points
        result["generation_true"] = generation_metrics(
            pick_points(fresh, GEN_POINTS, np.random.default_rng(SAMPLE_SEED + 2)), refs)
    return result


def finished(folder: str) -> bool:
    """True when `folder` holds a model whose training ran to the end."""
    return is_model_folder(folder) and bool(read_model_config(folder).get("meta", {}).get("finished"))


def novelty(gen: np.ndarray, train: np.ndarray, ref_to_train: np.ndarray) -> float:
    """Median Chamfer from each sample to its nearest training shape over the same for the references."""
    gen_to_train = pairwise_chamfer(list(gen), list(train)).min(axis=1)
    return float(np.median(gen_to_train) / np.median(ref_to_train))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", default="chair,table")
    parser.add_argument("--shapes", type=int, default=400, help="procedural shapes per family (train+val+test)")
    parser.add_argument("--test-fraction", type=float, default=0.25)
    parser.add_argument("--epochs", type=int, default=120)
    parser.add_argument("--batch-size", type=int, default=16,
                        help="shapes per step; 16 beat 32 at the same epochs (more steps for the same compute)")
    parser.add_argument("--template", default="squares", choices=("sphere", "squares"))
    parser.add_argument("--patches", type=int, default=8)
    parser.add_argument("--beta", type=float, default=TrainConfig(out="").beta)
    parser.add_argument("--prior-spread", type=float, default=TrainConfig(out="").prior_spread,
                        help="widening of the VAE's posterior mixture (the fitted-prior row)")
    parser.add_argument("--device", default="cpu", choices=DEVICE_CHOICES,
                        help="where every row trains and is measured; the tables in docs/benchmarks.md use cpu")
    parser.add_argument("--jobs", type=int, default=2, help="rows trained side by side, one process each")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per row")
    parser.add_argument("--seeds", type=lambda v: [int(x) for x in v.split(",")], default=[1, 2, 3],
                        help="sampling seeds; the fitted-prior rows give the mean over them (1-NNA moves ~4 points "
                             "between seeds at 100 shapes)")
    parser.add_argument("--modes", default="ae,vae", help="rows to train and measure: 'ae,vae', or 'vae' alone "
                                                          "for a prior ablation with --reuse")
    parser.add_argument("--reuse", action="store_true", help="measure runs already in --workdir, do not retrain")
    parser.add_argument("--fresh-seed", type=int, default=7, help="seed of the fresh true shapes (reference row)")
    parser.add_argument("--workdir", type=Path, default=Path("runs/bench_generation"))
    parser.add_argument("--json", type=Path, default=Path("runs/bench_generation.json"))
    args = parser.parse_args()
    try:
        resolve_device(args.device)
    except ConfigError as exc:
        parser.error(str(exc))
    families = args.families.split(",")
    keys = [(family, mode) for family in families for mode in args.modes.split(",")]
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        futures = {key: pool.submit(train_and_eval, *key, args) for key in keys}
        rows = {f"{family}/{mode}": futures[family, mode].result() for family, mode in keys}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}, indent=2))
    print_table(rows, families)


def print_table(rows: dict[str, Any], families: list[str]) -> None:
    """Markdown table: one block of rows per family; averaged 1-NNA cells show the per-seed range."""
    print("| family | row | recon CD x1e-3 | F@1% | MMD-CD x1e-3 | COV-CD % | 1-NNA-CD % | novelty |")
    print("|---|---|---|---|---|---|---|---|")
    for fam in families:
        ae, vae = rows.get(f"{fam}/ae"), rows.get(f"{fam}/vae")
        lines = [("autoencoder", ae, None), ("AE decoder + N(0,I) (naive)", ae, "normal"),
                 ("AE + fitted GMM", ae, "gmm"), ("VAE + N(0,I)", vae, "normal"),
                 ("VAE + GMM fitted by EM to the means", vae, "em_gmm"),
                 ("VAE + fitted prior (posterior mixture)", vae, "gmm"),
                 ("*ref: VAE reconstructions of training shapes*", vae, "train_recon"),
                 ("*ref: fresh true shapes*", vae, "true")]
        for name, r, prior in (line for line in lines if line[1] is not None):
            recon = f"{r['chamfer_x1e3']:.3f} | {r['fscore']:.3f}" if prior in (None, "normal", "gmm", "em_gmm") \
                else "– | –"
            print(f"| {fam} | {name} | {recon} | {generation_cells(r.get(f'generation_{prior}') if prior else None)} |")


def generation_cells(gen: dict[str, Any] | None) -> str:
    """MMD, COV, 1-NNA (with the range over seeds when there are several) and novelty cells."""
    if gen is None:
        return "– | – | – | –"
    nna = f"{100 * gen['nna_cd']:.1f}"
    seeds = [100 * s["nna_cd"] for s in gen.get("per_seed", [])]
    if len(seeds) > 1:
        nna += f" ({min(seeds):.1f}–{max(seeds):.1f})"
    novelty = f"{gen['novelty']:.2f}" if "novelty" in gen else "–"
    return f"{gen['mmd_cd']:.3f} | {100 * gen['cov_cd']:.1f} | {nna} | {novelty}"


if __name__ == "__main__":
    main()
