"""Issue 21's measurements of a base model on the real-mesh corpus's test split (docs/corpus.md).

1. Encoder-only reconstruction (posterior mean, 2500 points, unit ball): the median Chamfer per category
   and overall, against an ellipsoid fitted to the same points (the better of a least-squares quadric
   fit and the moment ellipsoid, bench/ellipsoid.py); the
   target is a ratio of medians <= 0.5.
2. Generation per category (2048 points, as many samples as test shapes, capped by --max-refs): 1-NNA-CD
   and COV-CD of the model's default prior (its per-label mixture where it has one) and the naive row,
   the same decoder fed N(0, I) latents.
3. Transfer (unless --transfer-epochs 0): the held-out category's train folder, the same number of
   epochs with each command's defaults, from this model with all weights training and with
   `--freeze encoder`, from scratch, and from the old base; test Chamfer and 1-NNA on its test folder.
   The runs are the real command lines (printed), so a reader can repeat any of them.

Writes a markdown report to stdout, the figures as JSON, and PNG sheets (reconstructions next to the
ellipsoid, samples per category, samples of each transfer model) into --workdir.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from backend.checkpoints import LoadedModel, load_model
from backend.model import ModelConfig
from backend.data.datasets import PointSets, load_folder
from backend.device import DEVICE_CHOICES, resolve_device
from backend.evaluate import GEN_POINTS, evaluate_model
from backend.inference import decode_latents, pick_points, reconstruct_points, sample_latents
from backend.metrics import chamfer, generation_metrics
from backend.reports import point_sheet
from bench.common import machine
from bench.ellipsoid import best_ellipsoid

REPO = Path(__file__).resolve().parent.parent
RECON_POINTS = 2500
SEED = 1
SHEET_LABELS = 12  # categories per sample sheet (four samples each): every category the model can sample, in a few sheets


def load_part(folder: Path, cache: Path | None) -> PointSets:
    """Point sets of one split folder (<category>/<mesh>), cached like training caches them."""
    return load_folder(folder, cache_dir=cache, progress=False)


def reconstruction(lm: LoadedModel, sets: PointSets, device: Any) -> dict[str, Any]:
    """Per-shape encoder and ellipsoid Chamfers (x1e-3), and their medians per category and overall."""
    preds, gts = reconstruct_points(lm.model, sets.points, device, count=RECON_POINTS)
    rng = np.random.default_rng(SEED)
    enc = np.array([chamfer(p, g) for p, g in zip(preds, gts)]) * 1e3
    fits = [best_ellipsoid(g, rng) for g in gts]
    ell = np.array([f[2] for f in fits]) * 1e3
    labels = np.array(sets.labels)
    groups = {label: np.flatnonzero(labels == label) for label in sorted(set(sets.labels))}
    groups["all"] = np.arange(len(labels))
    rows = {}
    for label, idx in groups.items():
        e, b = float(np.median(enc[idx])), float(np.median(ell[idx]))
        rows[label] = {"shapes": int(len(idx)), "encoder_median": e, "ellipsoid_median": b, "ratio": e / b,
                       "encoder_wins": float(np.mean(enc[idx] < ell[idx]))}
    return {"rows": rows, "per_shape": {"names": sets.names, "encoder": enc.tolist(), "ellipsoid": ell.tolist()},
            "preds": preds, "gts": gts, "ellipsoids": [f[1] for f in fits]}


def _cap(idx: np.ndarray, limit: int) -> np.ndarray:
    if limit <= 0 or len(idx) <= limit:
        return idx
    return np.sort(np.random.default_rng(SEED).choice(idx, limit, replace=False))


def generation(lm: LoadedModel, sets: PointSets, device: Any, max_refs: int) -> dict[str, Any]:
    """1-NNA-CD and COV-CD per category: the default prior (per label where fitted) and N(0, I)."""
    default = lm.meta.get("default_prior", "gmm" if lm.prior is not None else "normal")
    priors = [default] + (["normal"] if default != "normal" else [])
    labels = np.array(sets.labels)
    rows: dict[str, Any] = {}
    for label in sorted(set(sets.labels)):
        idx = _cap(np.flatnonzero(labels == label), max_refs)
        if len(idx) < 2:
            continue
        refs = pick_points(sets.points[idx], GEN_POINTS, np.random.default_rng(SEED))
        row: dict[str, Any] = {"refs": int(len(idx)), "label_prior": label in lm.label_priors}
        for prior in priors:
            z = _latents(lm, prior, len(idx), label)
            row[prior] = generation_metrics(decode_latents(lm.model, z, device, count=GEN_POINTS), refs)
        rows[label] = row
    return {"default_prior": default, "rows": rows}


def _latents(lm: LoadedModel, kind: str, count: int, label: str) -> np.ndarray:
    """`count` latents of `kind`, from `label`'s own mixture where the model has one ('gmm' only)."""
    own = label if kind == "gmm" and label in lm.label_priors else None
    return sample_latents(count, SEED, lm.config.latent_dim, kind, prior=lm.prior, label=own,
                          label_priors=lm.label_priors, model_name=lm.name)


def recon_sheet(rec: dict[str, Any], sets: PointSets, path: Path, part: str, categories: int = 8) -> None:
    """One `part` shape per category (the first few categories): truth, reconstruction, fitted ellipsoid."""
    clouds, titles = [], []
    seen: set[str] = set()
    for i, label in enumerate(sets.labels):
        if label in seen or len(seen) >= categories:
            continue
        seen.add(label)
        gt = rec["gts"][i]
        e, b = rec["per_shape"]["encoder"][i], rec["per_shape"]["ellipsoid"][i]
        clouds += [gt[:1500], rec["preds"][i][:1500], rec["ellipsoids"][i][:1500]]
        titles += [f"{label}: {part} shape", f"encoder CD {e:.1f}e-3", f"ellipsoid CD {b:.1f}e-3"]
    point_sheet(clouds, path, titles, columns=6)


def sample_sheet(lm: LoadedModel, labels: list[str], device: Any, path: Path, per_label: int = 4) -> None:
    """`per_label` samples of each label from the model's default prior (per-label mixture where fitted)."""
    default = lm.meta.get("default_prior", "gmm" if lm.prior is not None else "normal")
    clouds, titles = [], []
    for label in labels:
        z = _latents(lm, default, per_label, label)
        clouds += list(decode_latents(lm.model, z, device, count=1500))
        titles += [label] * per_label
    point_sheet(clouds, path, titles, columns=8)


def architecture_flags(cfg: ModelConfig) -> list[str]:
    """The train flags that build `cfg`'s architecture, so a from-scratch run differs from a fine-tune
    only in its starting weights."""
    return ["--template", cfg.template, "--patches", str(cfg.patches), "--latent-dim", str(cfg.latent_dim),
            "--decoder-width", str(cfg.decoder_width), "--decoder-layers", str(cfg.decoder_layers)]


def transfer_commands(model: Path, old_base: Path, train: Path, epochs: int, workdir: Path,
                      cache: Path | None, architecture: list[str]) -> dict[str, list[str]]:
    """The four transfer runs as command lines (each command's own defaults apart from the epochs; the
    from-scratch run gets `architecture`, the new base's flags)."""
    py = [sys.executable, "-m", "backend"]
    common = ["--data", str(train), "--epochs", str(epochs), "--sheet-every", "0", "--force"]
    if cache is not None:
        common += ["--cache-dir", str(cache)]
    out = {name: ["--out", str(workdir / f"transfer_{name}")]
           for name in ("new_base", "new_base_frozen_encoder", "scratch", "old_base")}
    return {
        "new_base": py + ["finetune", "--init", str(model)] + common + out["new_base"],
        "new_base_frozen_encoder": py + ["finetune", "--init", str(model), "--freeze", "encoder"] + common
        + out["new_base_frozen_encoder"],
        "scratch": py + ["train", *architecture] + common + out["scratch"],
        "old_base": py + ["finetune", "--init", str(old_base)] + common + out["old_base"],
    }


def transfer(commands: dict[str, list[str]], test: Path, workdir: Path, device: Any) -> dict[str, Any]:
    """Run each transfer command, then measure its model on the held-out test folder and draw its samples."""
    rows: dict[str, Any] = {}
    for name, cmd in commands.items():
        out = Path(cmd[cmd.index("--out") + 1])
        t = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - t
        report = evaluate_model(out, data=str(test), seed=SEED)
        (label, group), = report["groups"].items()
        prior = report["default_prior"]
        rows[name] = {"command": " ".join(cmd[1:]), "seconds": seconds, "label": label, "test_shapes": group["shapes"],
                      "chamfer_x1e3": group["chamfer_x1e3"], "prior": prior,
                      "nna": group[f"generation_{prior}"]["nna_cd"],
                      "cov": group[f"generation_{prior}"]["cov_cd"]}
        sample_sheet(load_model(out, device), [label], device, workdir / f"transfer_{name}_samples.png", per_label=8)
    return rows


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def markdown(report: dict[str, Any]) -> str:
    """The report's tables as markdown."""
    lines = [f"model: {report['model']} (epoch {report['epoch']}, finished: {report['finished']})",
             f"machine: {report['machine']}", "",
             "| category | test shapes | encoder median CD x1e-3 | ellipsoid median CD x1e-3 | ratio | encoder better |",
             "|---|---|---|---|---|---|"]
    for label, r in report["reconstruction"].items():
        lines.append(f"| {label} | {r['shapes']} | {r['encoder_median']:.2f} | {r['ellipsoid_median']:.2f} | "
                     f"{r['ratio']:.2f} | {_pct(r['encoder_wins'])} |")
    gen = report["generation"]
    lines += ["", f"generation (default prior: {gen['default_prior']}; naive: N(0, I)):", "",
              "| category | refs | 1-NNA-CD | COV-CD | naive 1-NNA-CD | naive COV-CD |", "|---|---|---|---|---|---|"]
    means: dict[str, list[float]] = {key: [] for key in ("d_nna", "d_cov", "n_nna", "n_cov")}
    for label, r in gen["rows"].items():
        d, n = r[gen["default_prior"]], r.get("normal", r[gen["default_prior"]])
        lines.append(f"| {label} | {r['refs']} | {_pct(d['nna_cd'])} | {_pct(d['cov_cd'])} | "
                     f"{_pct(n['nna_cd'])} | {_pct(n['cov_cd'])} |")
        for key, value in zip(means, (d["nna_cd"], d["cov_cd"], n["nna_cd"], n["cov_cd"])):
            means[key].append(value)
    if gen["rows"]:
        lines.append("| mean over categories | " + str(sum(r["refs"] for r in gen["rows"].values())) + " | "
                     + " | ".join(_pct(float(np.mean(v))) for v in means.values()) + " |")
    if report.get("transfer"):
        lines += ["", "| transfer start | test CD x1e-3 | 1-NNA-CD | COV-CD | wall s | command |", "|---|---|---|---|---|---|"]
        for name, r in report["transfer"].items():
            lines.append(f"| {name} | {r['chamfer_x1e3']:.2f} | {_pct(r['nna'])} | {_pct(r['cov'])} | "
                         f"{r['seconds']:.0f} | `python {r['command']}` |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Measure --model on the corpus test split (and transfer), print markdown, write JSON and sheets."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, required=True, help="a model folder (a running training's folder works)")
    p.add_argument("--corpus", type=Path, default=REPO / "data" / "corpus", help="the built corpus (make corpus)")
    p.add_argument("--part", default="test", choices=("val", "test"), help="split part to measure on")
    p.add_argument("--held-out", default="helmet", help="the transfer category")
    p.add_argument("--old-base", type=Path, default=REPO / "models" / "base")
    p.add_argument("--transfer-epochs", type=int, default=30, help="0 skips the transfer runs")
    p.add_argument("--max-refs", type=int, default=50, help="test shapes per category for generation (0: all)")
    p.add_argument("--cache-dir", type=Path, help="point cache shared with training")
    p.add_argument("--workdir", type=Path, default=REPO / "runs" / "bench_base_v2")
    p.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    args.workdir.mkdir(parents=True, exist_ok=True)
    split = args.corpus / "split"
    for folder in (split / "base" / args.part, split / "transfer" / "train" / args.held_out):
        if not folder.is_dir():
            p.error(f"{folder} is missing: build the corpus first (make corpus) or pass --corpus")
    lm = load_model(args.model, device)
    sets = load_part(split / "base" / args.part, args.cache_dir)
    t = time.perf_counter()
    rec = reconstruction(lm, sets, device)
    recon_sheet(rec, sets, args.workdir / "reconstructions.png", args.part)
    gen = generation(lm, sets, device, args.max_refs)
    labels = sorted(lm.label_priors) or ["all"]
    for first in range(0, len(labels), SHEET_LABELS):
        sample_sheet(lm, labels[first:first + SHEET_LABELS], device,
                     args.workdir / f"samples_by_category_{first // SHEET_LABELS + 1}.png")
    report: dict[str, Any] = {"model": str(args.model), "epoch": lm.meta.get("epoch"),
                              "finished": lm.meta.get("finished"), "machine": machine(), "part": args.part,
                              "reconstruction": rec["rows"], "generation": gen,
                              "test_seconds": time.perf_counter() - t}
    if args.transfer_epochs > 0:
        commands = transfer_commands(args.model, args.old_base, split / "transfer" / "train" / args.held_out,
                                     args.transfer_epochs, args.workdir, args.cache_dir,
                                     architecture_flags(lm.config))
        report["transfer"] = transfer(commands, split / "transfer" / "test" / args.held_out, args.workdir, device)
    (args.workdir / "report.json").write_text(json.dumps(
        {**report, "per_shape": rec["per_shape"]}, indent=1))
    print(markdown(report))
    print(f"\nsheets and report.json in {args.workdir}; median of per-shape ratios: "
          f"{statistics.median(np.array(rec['per_shape']['encoder']) / np.array(rec['per_shape']['ellipsoid'])):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
