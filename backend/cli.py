"""Command line: `python -m backend <command>`; run `python -m backend <command> --help` for details."""

from __future__ import annotations

import argparse
import errno
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Sequence

from . import __version__
from .errors import AtlasError, ConfigError, cannot_write
from .limits import DEFAULT_FIT_STEPS, DEVICE_CHOICES, MAX_DIRECTIONS
from .options import (
    AMOUNT, COUNT, EPOCHS, FACE_BUDGET, FIT, FIT_STEPS, LABEL, PRIOR, RESOLUTION, SEED, SHARED_FIT, SHARED_FIT_STEPS, SIZE,
    STEPS, SURFACE, TEMPERATURE, Option,
)


def bundled_model(name: str = "base") -> Path:
    """The model shipped beside the backend (a checkout or the add-on zip: ../models), or the copy that
    `pip install` puts in the atlasvae_models package; the first path when neither exists."""
    beside = Path(__file__).resolve().parent.parent / "models" / name
    if beside.is_dir():
        return beside
    try:
        from importlib.resources import files

        installed = Path(str(files("atlasvae_models") / name))
    except (ImportError, TypeError):
        return beside
    return installed if installed.is_dir() else beside


DEFAULT_MODEL = bundled_model()

EPILOG = """examples:
  python -m backend sample --n 8 --out out/samples          8 new shapes from the bundled model
  python -m backend reconstruct monkey.obj --out out/monkey_vae.obj
  python -m backend finetune --data ~/assets/swords --out ~/models/swords --epochs 20
  python -m backend train --procedural all:200 --out runs/base --epochs 40
  python -m backend evaluate --model models/base --procedural sword,plane:50 --seed 7
  python -m backend refit-prior --model ~/models/swords --out ~/models/swords2   older model, current prior
  python -m backend record-sizes --model ~/models/swords --data ~/assets/swords   older model, real sizes
  python -m backend directions --model models/base --label chair   the Shape Explorer's directions
  python -m backend explore --from chair.obj --direction 0 --amount 1.5 --out out/chair_taller.obj
  python -m backend serve                                  JSON-RPC on stdin/stdout (for Blender)
"""


def _device_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES,
                   help="where the model runs: auto picks CUDA, then Apple MPS, then CPU (default: auto)")


def _model_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL,
                   help=f"model folder (config.json + model.safetensors); default: the bundled {DEFAULT_MODEL.name}")


def _bounded(option: Option) -> Any:
    """argparse type for a declared option: its kind within its bounds, or an error saying what it accepts."""
    def parse(text: str) -> Any:
        try:
            value = int(text) if option.kind == "int" else float(text)
        except ValueError:
            value = None
        if value is None or value != value or (option.minimum is not None and value < option.minimum) or (
                option.maximum is not None and value > option.maximum):
            raise argparse.ArgumentTypeError(f"must be {option.describe()}, got {text!r}")
        return value
    parse.__name__ = option.kind  # argparse names the type in its own messages
    return parse


def _option_arg(p: argparse.ArgumentParser, option: Option, help: str, flag: str = "", **extra: Any) -> None:
    """The CLI argument of a declared option (backend/options.py): its choices or bounds and the CLI's default."""
    kind: dict[str, Any] = ({"choices": option.choices} if option.choices is not None else
                            {} if option.kind == "str" else {"type": _bounded(option)})
    default = option.cli_default
    shown = f" (default: {default})" if default is not None and "%(default)" not in help else ""
    p.add_argument(flag or "--" + option.name.replace("_", "-"), default=default, help=help + shown, **kind, **extra)


def _resolution_arg(p: argparse.ArgumentParser) -> None:
    _option_arg(p, RESOLUTION, "vertices per output mesh; the sphere template snaps to 642, 2562, 10242, ...")


def _surface_args(p: argparse.ArgumentParser) -> None:
    _option_arg(p, SURFACE, "closed: one watertight mesh per shape; patches: the decoded template mesh as it is "
                "(open, overlapping patches for a patch model; keeps the template's UVs); auto: closed for patch "
                "models, the template mesh for sphere models")
    _option_arg(p, FACE_BUDGET, f"at most N faces in a closed mesh, {FACE_BUDGET.minimum}-{FACE_BUDGET.maximum}",
                metavar="N")


def _dropped(names: Sequence[str], meshes: Sequence[Any]) -> str:
    """Which meshes lost stray pieces when closed, for the summary line ("" when none did)."""
    parts = [f"{name}: {m.pieces_dropped}" for name, m in zip(names, meshes) if getattr(m, "pieces_dropped", 0)]
    return f"; stray pieces dropped from {', '.join(parts)}" if parts else ""


def _direction(text: str) -> int:
    """argparse type of --direction: an index the largest direction set can have."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < MAX_DIRECTIONS:
        raise argparse.ArgumentTypeError(f"must be an integer between 0 and {MAX_DIRECTIONS - 1}, got {text!r}")
    return value


def _train_args(p: argparse.ArgumentParser, finetune: bool) -> None:
    from .training.finetune import GROUP_HELP, parse_freeze
    from .model import ModelConfig
    from .training.config import FINETUNE_LR, TrainConfig

    d = TrainConfig(out="")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="folder of mesh files (OBJ, STL, PLY, OFF, GLB/GLTF; any tree, ShapeNet "
                                    "or ModelNet layout), or a point pack made by `pack`; never modified")
    src.add_argument("--procedural", help="built-in procedural families, e.g. 'sword,plane:200' or 'all:100'")
    p.add_argument("--out", required=True, help="output model folder; an existing one needs --resume or --force")
    if finetune:
        p.add_argument("--init", type=Path, default=DEFAULT_MODEL,
                       help="model to start from (default: the bundled base model)")
    else:
        p.add_argument("--init", type=Path, default=None, help="optional model to start from (fine-tuning)")
    p.add_argument("--epochs", type=int, default=EPOCHS.cli_default if finetune else d.epochs,
                   help="passes over the data")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=FINETUNE_LR if finetune else d.lr, help="Adam learning rate")
    p.add_argument("--points", type=int, default=d.points, help="surface points per shape per step")
    p.add_argument("--beta", type=float, default=d.beta,
                   help="KL weight relative to the mean squared Chamfer (default %(default)s; see docs)")
    p.add_argument("--warmup-epochs", type=int, default=d.warmup_epochs, help="linear KL warm-up length")
    p.add_argument("--free-bits", type=float, default=d.free_bits, help="nats per latent dim that cost nothing")
    p.add_argument("--augment-mirror", type=float, default=d.augment_mirror, metavar="P",
                   help="probability of mirroring each shape across its x = 0 plane at each step "
                        "(default %(default)s: off; may change when resuming)")
    p.add_argument("--augment-scale", type=float, default=d.augment_scale, metavar="S",
                   help="stretch each shape's axes by random factors in [1-S, 1+S] at each step, then rescale it "
                        "to its former size (default %(default)s: off; may change when resuming)")
    # Architecture flags default to None: the --init model's value, else the ModelConfig default below.
    inherit = "default: the --init model's, else %s" if finetune else "default: %s, or the --init model's"
    m = ModelConfig()
    p.add_argument("--mode", choices=("vae", "ae"),
                   help="vae or plain autoencoder; with --init, 'vae' turns an autoencoder into a VAE (encoder and "
                        "decoder kept, a narrow variance head added) (" + inherit % m.mode + ")")
    p.add_argument("--template", choices=("sphere", "squares"), help="(" + inherit % m.template + ")")
    p.add_argument("--patches", type=int, help="number of template primitives (" + inherit % m.patches + ")")
    p.add_argument("--latent-dim", type=int, help="(" + inherit % m.latent_dim + ")")
    p.add_argument("--decoder-width", type=int, help="(" + inherit % m.decoder_width + ")")
    p.add_argument("--decoder-layers", type=int, help="(" + inherit % m.decoder_layers + ")")
    p.add_argument("--freeze", type=parse_freeze, default=(), metavar="GROUPS",
                   help="keep these layer groups of the --init model fixed, comma-separated: " + GROUP_HELP)
    p.add_argument("--val-fraction", type=float, default=d.val_fraction)
    p.add_argument("--prior-components", type=int, default=d.prior_components,
                   help="autoencoder only: Gaussians in the latent mixture fitted after training "
                        "(half as many per label); a VAE's prior has one Gaussian per training shape "
                        "(a random 4096 of them above that)")
    p.add_argument("--prior-spread", type=float, default=d.prior_spread,
                   help="VAE only: how much the fitted prior widens each training shape's posterior; "
                        "1 gives near-copies of training shapes, larger gives newer and less exact shapes")
    p.add_argument("--sheet-every", type=int, default=d.sheet_every, help="write a sample sheet PNG every N epochs")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--name", help="model name shown in Blender (default: the output folder's name)")
    p.add_argument("--cache-dir", help="where sampled surface points are cached (default ~/.cache/atlasvae)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--force", action="store_true", help="overwrite the model in --out")
    _device_arg(p)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (kept separate so tests and docs can inspect it)."""
    parser = argparse.ArgumentParser(
        prog="python -m backend", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="AtlasVAE: generate, reconstruct and train 3-D shape models (an AtlasNet VAE).")
    parser.add_argument("--version", action="version", version=f"atlasvae {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train a model from scratch on a folder of meshes or procedural shapes")
    _train_args(p, finetune=False)
    p = sub.add_parser("finetune", help="adapt a pretrained model to a folder of your own meshes")
    _train_args(p, finetune=True)

    p = sub.add_parser("sample", help="write N new shapes as mesh files")
    _model_arg(p)
    _option_arg(p, COUNT, "number of shapes", flag="--n")
    _option_arg(p, SEED, "same seed, same shapes")
    _option_arg(p, TEMPERATURE, "latent spread: lower is safer, higher wilder")
    _option_arg(p, PRIOR, "latent prior: the fitted mixture (gmm), N(0, I) (normal) or the model's default (auto)")
    _option_arg(p, LABEL, "sample one family/class the model was trained on, e.g. 'sword' "
                "(see the labels in the model's config.json)")
    _option_arg(p, SIZE, "real: each shape at its family's typical size in metres, standing on z = 0 (models that "
                "record no sizes give unit size); unit: in the unit ball")
    p.add_argument("--out", type=Path, default=Path("out/samples"), help="folder for sample_000.obj, ...")
    p.add_argument("--format", default="obj", choices=("obj", "ply", "stl", "glb", "off"))
    p.add_argument("--sheet", type=Path, help="also write a PNG sheet of the samples here")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    _resolution_arg(p)
    _surface_args(p)
    _device_arg(p)

    p = sub.add_parser("reconstruct", help="fit the model to a mesh file and write the model's version of it")
    _model_arg(p)
    p.add_argument("input", type=Path, help="mesh file to reconstruct")
    p.add_argument("--out", type=Path, required=True, help="output mesh file (format from its suffix)")
    p.add_argument("--force", action="store_true", help="overwrite the output file")
    _option_arg(p, FIT, "encoder: one pass (what the model thinks it is); latent: optimise the latent code; "
                "full: also adapt a copy of the decoder, faithful to the input")
    _option_arg(p, FIT_STEPS, "fit steps, at most; fewer if the fit stops improving (default: latent "
                f"{DEFAULT_FIT_STEPS['latent']}, full {DEFAULT_FIT_STEPS['full']})")
    _resolution_arg(p)
    _surface_args(p)
    _device_arg(p)

    p = sub.add_parser("interpolate", help="morph between two mesh files through the latent space")
    _model_arg(p)
    p.add_argument("a", type=Path)
    p.add_argument("b", type=Path)
    _option_arg(p, STEPS, "shapes from a to b, both included")
    p.add_argument("--out", type=Path, default=Path("out/interpolation"), help="folder for step_000.obj, ...")
    _option_arg(p, SHARED_FIT, "latent: fit each end's latent code to its mesh first; encoder: one pass")
    _option_arg(p, SHARED_FIT_STEPS, f"latent fit steps per end (default {DEFAULT_FIT_STEPS['latent']})")
    p.add_argument("--force", action="store_true")
    _resolution_arg(p)
    _surface_args(p)
    _device_arg(p)

    p = sub.add_parser("directions", help="list the main directions of a model's latent space (the Shape "
                                          "Explorer's sliders), model-wide or of one family")
    _model_arg(p)
    _option_arg(p, LABEL, "a family with its own directions (else the model-wide ones are listed)")
    _device_arg(p)

    p = sub.add_parser("explore", help="move a shape along the model's main directions and write it")
    _model_arg(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--from", dest="source", type=Path, help="mesh file to start from (encoded, in its own place)")
    src.add_argument("--latent", type=Path, help="latent code to start from: a .npy file or a text file of numbers "
                                                 "(as --save-latent writes), decoded in the unit ball")
    _option_arg(p, SHARED_FIT, "latent: fit the --from mesh's latent code first; encoder: one pass")
    _option_arg(p, SHARED_FIT_STEPS, f"latent fit steps (default {DEFAULT_FIT_STEPS['latent']})")
    p.add_argument("--direction", type=_direction, action="append", default=[], metavar="K",
                   help=f"index of a direction (see the `directions` command), 0-{MAX_DIRECTIONS - 1}; repeat "
                        f"with one --amount each")
    _option_arg(p, AMOUNT, "how far along the --direction before it, in the training codes' standard deviations",
                action="append")
    _option_arg(p, LABEL, "use this family's own directions (default: the model-wide ones)")
    p.add_argument("--out", type=Path, required=True, help="output mesh file (format from its suffix)")
    p.add_argument("--save-latent", type=Path, help="also write the moved latent code here (text, one number a line)")
    p.add_argument("--force", action="store_true", help="overwrite the output files")
    _resolution_arg(p)
    _surface_args(p)
    _device_arg(p)

    p = sub.add_parser("evaluate", help="reconstruction and generation metrics as JSON")
    _model_arg(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="folder of reference meshes")
    src.add_argument("--procedural", help="procedural references, e.g. 'sword,plane:50'")
    p.add_argument("--seed", type=int, default=1, help="seed for procedural references and sampling")
    p.add_argument("--samples", type=int, default=0, help="generated shapes per group (default: as many as refs)")
    p.add_argument("--max-per-label", type=int, default=0,
                   help="at most this many references per label, drawn by --seed (default 0: all); the "
                        "1-NNA matrix over all references grows with the square of their number")
    p.add_argument("--out", type=Path, help="write the JSON here as well as to stdout")
    p.add_argument("--force", action="store_true", help="overwrite the --out file")
    train = p.add_mutually_exclusive_group()
    train.add_argument("--train-data", help="folder of the model's training meshes, for samples' distance to the "
                                            "nearest training shape (default: the training data the model recorded)")
    train.add_argument("--no-train-data", action="store_true",
                       help="skip the nearest-training-shape distances (the slowest part after 1-NNA)")
    _device_arg(p)

    p = sub.add_parser("refit-prior", help="refit a trained model's latent prior (e.g. a model from an older "
                                           "version, or to try another --prior-spread); weights unchanged")
    p.add_argument("--model", type=Path, required=True, help="the trained model folder to refit")
    p.add_argument("--prior-spread", type=float,
                   help="VAE only: widening of each training shape's posterior (default: the model's, else 1.5)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--data", help="the training meshes, if they moved since training (default: as recorded)")
    src.add_argument("--procedural", help="procedural training shapes instead of the recorded ones")
    p.add_argument("--out", type=Path, help="write the refitted model here (default: replace the prior in place)")
    p.add_argument("--force", action="store_true",
                   help="allow replacing the model's own prior in place, or another model at --out")
    _device_arg(p)

    from .data.datasets import CACHE_POINTS  # already loaded by the training options above

    p = sub.add_parser("pack", help="sample a mesh folder's surface points into one .npz file that train and "
                                    "finetune take as --data (to train where the meshes are not)")
    p.add_argument("--data", required=True, help="folder of mesh files, as train reads it; never modified")
    p.add_argument("--out", type=Path, required=True, help="the pack to write (name ending in .npz)")
    p.add_argument("--points", type=int, default=CACHE_POINTS,
                   help=f"surface points per shape (default {CACHE_POINTS}, what training reads from a folder)")
    p.add_argument("--cache-dir", help="where sampled surface points are cached (default ~/.cache/atlasvae)")
    p.add_argument("--force", action="store_true", help="overwrite an existing pack")

    p = sub.add_parser("record-sizes", help="record a trained model's typical sizes per family (in metres) from "
                                            "its training meshes, so samples come out at real size; weights unchanged")
    p.add_argument("--model", type=Path, required=True, help="the trained model folder (its config.json is updated)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--data", help="the training meshes, one folder per label (default: as recorded)")
    src.add_argument("--procedural", help="procedural training shapes, e.g. 'sword,plane:200'")
    p.add_argument("--cache-dir", help="where sampled surface points are cached (default ~/.cache/atlasvae)")
    p.add_argument("--force", action="store_true", help="replace sizes the model already records")

    p = sub.add_parser("serve", help="JSON-RPC 2.0 over stdin/stdout for the Blender add-on", add_help=False)
    p.add_argument("args", nargs=argparse.REMAINDER)
    return parser


def _check_out_folder(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--out {folder}: exists and is not a folder")


def _make_folder(folder: Path) -> None:
    """Create an output folder (and its parents); a refusal by the OS is an error naming the folder."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise cannot_write(folder, exc) from None


def _check_writable(folder: Path) -> None:
    """Refuse an output folder that cannot be written, before any work: its nearest existing folder must be
    writable (asked of the OS; nothing is written to find out)."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"{probe}: exists and is not a folder, so {folder} cannot be created")
    if os.name == "posix" and os.statvfs(probe).f_flag & os.ST_RDONLY:
        code = errno.EROFS
    elif not os.access(probe, os.W_OK | os.X_OK):
        code = errno.EACCES
    else:
        return
    raise cannot_write(probe, OSError(code, os.strerror(code)))


def _refuse_existing(paths: Sequence[Path], force: bool) -> None:
    existing = [p for p in paths if p.exists()]
    if existing and not force:
        raise ConfigError(f"{existing[0]} already exists ({len(existing)} file(s) would be overwritten); "
                          f"pass --force to overwrite")


def _service(args: argparse.Namespace) -> Any:
    from .serving.service import ModelService

    service = ModelService(args.device)
    service.load(args.model)
    return service


def cmd_train(args: argparse.Namespace) -> int:
    from .training.config import config_from_args
    from .training.distributed import placement_from_env, should_report
    from .training.loop import run

    cfg = config_from_args({k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()})
    placement = placement_from_env()
    cancel = threading.Event()

    def on_interrupt(signum: int, frame: Any) -> None:
        # Under torchrun one Ctrl-C reaches each process twice (from the terminal and forwarded by torchrun),
        # so there a repeat only re-requests the stop; torchrun kills processes that do not exit in time.
        if cancel.is_set() and placement.world_size == 1:
            raise KeyboardInterrupt
        if not cancel.is_set() and placement.rank == 0:
            print("\nstopping after this step and saving a checkpoint" +
                  (" (Ctrl-C again to abort now)" if placement.world_size == 1 else ""), file=sys.stderr)
        cancel.set()

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        summary = run(cfg, cancel=cancel)
    except AtlasError as exc:
        if should_report(exc):
            raise
        return 2  # another rank's error, re-raised here so that every rank stops; rank 0 prints it
    finally:
        signal.signal(signal.SIGINT, previous)
    if placement.rank == 0:
        print(json.dumps(summary, indent=2))
    return 0 if summary["state"] == "finished" else 130


def cmd_sample(args: argparse.Namespace) -> int:
    from .data.meshio import printable, save_mesh

    paths = [args.out / f"sample_{i:03d}.{args.format}" for i in range(args.n)]
    _check_out_folder(args.out)
    _refuse_existing(paths + ([args.sheet] if args.sheet else []), args.force)
    for folder in {args.out, *([args.sheet.parent] if args.sheet else [])}:
        _check_writable(folder)
    service = _service(args)
    service.check_output_size(args.n, args.resolution, args.surface, args.face_budget)
    meshes = service.sample(args.n, args.seed, args.temperature, args.resolution, args.prior, args.label,
                            args.size, surface=args.surface, face_budget=args.face_budget)
    if service.size_applied(args.size) != args.size:
        print(f"note: {args.model} records no typical sizes, so the samples are at unit size "
              f"(`python -m backend record-sizes --model {args.model}` adds them)", file=sys.stderr)
    _make_folder(args.out)
    for path, mesh in zip(paths, meshes):
        save_mesh(path, mesh)
    if args.sheet:
        from .reports import point_sheet

        point_sheet([m.vertices for m in meshes], args.sheet, [p.stem for p in paths])
    print(f"wrote {len(paths)} meshes to {printable(str(args.out))}{_dropped([p.name for p in paths], meshes)}")
    return 0


class _FitProgress:
    """Fit progress on stderr: one updating line on a terminal, a line every 10 % otherwise."""

    def __init__(self, label: str) -> None:
        self.label, self.tty, self.shown = label, sys.stderr.isatty(), -1

    def __call__(self, event: dict[str, Any]) -> None:
        step, steps = int(event["step"]), int(event["steps"])
        tenth = 10 * step // max(1, steps)
        if not self.tty and tenth == self.shown and step < steps:
            return
        self.shown = tenth
        text = (f"{self.label}: {event.get('phase', '')} step {step}/{steps}, "
                f"Chamfer x1e-3 {float(event['chamfer']):.3f}")
        print(("\r" + text) if self.tty else text, end="" if self.tty else "\n", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.tty and self.shown >= 0:
            print(file=sys.stderr)


def cmd_reconstruct(args: argparse.Namespace) -> int:
    from .data.meshio import check_suffix, load_mesh, printable, save_mesh

    check_suffix(args.out, "cannot save as")
    _refuse_existing([args.out], args.force)
    _check_writable(args.out.parent)
    mesh = load_mesh(args.input)
    progress = _FitProgress(f"fit {args.fit}")
    try:
        result, cd = _service(args).reconstruct(mesh, args.resolution, fit=args.fit, steps=args.steps,
                                                progress=progress, surface=args.surface,
                                                face_budget=args.face_budget)
    finally:
        progress.close()
    _make_folder(args.out.parent)
    save_mesh(args.out, result)
    print(f"wrote {printable(str(args.out))} (Chamfer x1e-3: {cd:.3f}){_dropped([args.out.name], [result])}")
    return 0


def cmd_interpolate(args: argparse.Namespace) -> int:
    from .data.meshio import load_mesh, printable, save_mesh

    paths = [args.out / f"step_{i:03d}.obj" for i in range(args.steps)]
    _check_out_folder(args.out)
    _refuse_existing(paths, args.force)
    _check_writable(args.out)
    progress = _FitProgress(f"fit {args.fit}")
    try:
        service = _service(args)
        service.check_output_size(args.steps, args.resolution, args.surface, args.face_budget)
        meshes = service.interpolate(load_mesh(args.a), load_mesh(args.b), args.steps, args.resolution,
                                     fit=args.fit, fit_steps=args.fit_steps, progress=progress,
                                     surface=args.surface, face_budget=args.face_budget)
    finally:
        progress.close()
    _make_folder(args.out)
    for path, mesh in zip(paths, meshes):
        save_mesh(path, mesh)
    print(f"wrote {len(paths)} meshes to {printable(str(args.out))}{_dropped([p.name for p in paths], meshes)}")
    return 0


def cmd_directions(args: argparse.Namespace) -> int:
    family, chosen, families = _service(args).direction_set(args.label)
    which = f"family {family!r}" if family is not None else "the whole model" + (
        f" ({args.label!r} has too few shapes for its own)" if args.label is not None else "")
    print(f"directions of {which}; move each by up to +-{AMOUNT.maximum:g} sigma")
    print(f"{'index':>5}  {'sigma':>7}  description")
    for index, (text, sigma) in enumerate(zip(chosen.descriptions, chosen.sigma)):
        print(f"{index:>5}  {sigma:>7.3f}  {text}")
    print(f"families with their own directions: {', '.join(families) or 'none'}")
    return 0


def _read_latent(path: Path) -> Any:
    """A latent code from a .npy file or a text file of numbers; a ConfigError naming the file otherwise."""
    import numpy as np

    from .limits import MAX_JSON_FILE_BYTES
    from .regular import read_regular

    data = read_regular(path, MAX_JSON_FILE_BYTES, ConfigError)
    try:
        if path.suffix.lower() == ".npy":
            import io

            code = np.load(io.BytesIO(data), allow_pickle=False)
        else:
            code = np.array([float(t) for t in data.decode("utf-8").replace(",", " ").split()])
    except (ValueError, UnicodeDecodeError, OSError) as exc:
        raise ConfigError(f"--latent {path}: not a .npy array or a text file of numbers ({exc})") from None
    code = np.asarray(code, dtype=np.float64).reshape(-1)
    if not len(code) or not np.isfinite(code).all():
        raise ConfigError(f"--latent {path}: needs one or more finite numbers, got {len(code)} values"
                          f"{' with NaN or infinity' if len(code) else ''}")
    return code


def cmd_explore(args: argparse.Namespace) -> int:
    from .data.meshio import check_suffix, load_mesh, printable, save_mesh

    amounts = args.amount or []
    if len(args.direction) != len(amounts):
        raise ConfigError(f"give one --amount per --direction (got {len(args.direction)} --direction and "
                          f"{len(amounts)} --amount)")
    check_suffix(args.out, "cannot save as")
    outputs = [args.out] + ([args.save_latent] if args.save_latent else [])
    _refuse_existing(outputs, args.force)
    for path in outputs:
        _check_writable(path.parent)
    latent = _read_latent(args.latent) if args.latent else None
    mesh = load_mesh(args.source) if args.source else None
    service = _service(args)
    service.check_output_size(1, args.resolution, args.surface, args.face_budget)
    scale, offset = 1.0, (0.0, 0.0, 0.0)
    if mesh is not None:
        progress = _FitProgress(f"fit {args.fit}")
        try:
            latent, scale, offset = service.encode_in_frame(mesh, args.fit, args.fit_steps, progress)
        finally:
            progress.close()
    result = service.explore(latent, list(zip(args.direction, amounts)), label=args.label, scale=scale,
                             offset=offset, resolution=args.resolution, surface=args.surface,
                             face_budget=args.face_budget)
    _make_folder(args.out.parent)
    save_mesh(args.out, result)
    if args.save_latent:
        from .checkpoints import atomic_write_bytes

        assert result.latent is not None
        atomic_write_bytes(args.save_latent, "".join(f"{v!r}\n" for v in result.latent.tolist()).encode())
    moves = ", ".join(f"{k} by {a:+g}" for k, a in zip(args.direction, amounts)) or "no move"
    print(f"wrote {printable(str(args.out))} ({moves}){_dropped([args.out.name], [result])}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate_model

    if args.out:
        _refuse_existing([args.out], args.force)
        _check_writable(args.out.parent)
    report = evaluate_model(args.model, data=args.data, procedural=args.procedural, seed=args.seed,
                            samples=args.samples, device=args.device, train_data=args.train_data,
                            nearest=not args.no_train_data, max_per_label=args.max_per_label)
    text = json.dumps(report, indent=2)
    if args.out:
        from .checkpoints import atomic_write_bytes

        atomic_write_bytes(args.out, (text + "\n").encode())
    print(text)
    return 0


def cmd_refit_prior(args: argparse.Namespace) -> int:
    from .training.refit import refit_prior

    summary = refit_prior(args.model, args.out, args.prior_spread, args.data, args.procedural, args.device,
                          args.force)
    print(json.dumps(summary, indent=2))
    return 0


def cmd_pack(args: argparse.Namespace) -> int:
    from .data.datasets import load_folder
    from .data.packs import check_pack_target, write_pack
    from .training.config import INT_BOUNDS

    check_pack_target(args.out, args.force)
    low, high = INT_BOUNDS["points"]
    if not low <= args.points <= high:
        raise ConfigError(f"--points must be between {low} and {high}, got {args.points}")
    sets = load_folder(args.data, n_cache=args.points, cache_dir=args.cache_dir)
    for name, reason in sets.skipped:
        print(f"skipped {name}: {reason}", file=sys.stderr)
    for warning in sets.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    out = write_pack(sets, args.out, force=args.force)
    print(f"wrote {out}: {len(sets)} shapes x {sets.points.shape[1]} points, {out.stat().st_size} bytes")
    return 0


def cmd_record_sizes(args: argparse.Namespace) -> int:
    from .training.record_sizes import record_sizes

    summary = record_sizes(args.model, args.data, args.procedural, args.cache_dir, args.force)
    print(json.dumps(summary, indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; user errors print one clear line and exit 2, Ctrl-C exits 130."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "serve":
        from .serving.entry import main as serve_main

        return serve_main(argv[1:])
    args = build_parser().parse_args(argv)
    handlers = {"train": cmd_train, "finetune": cmd_train, "sample": cmd_sample,
                "reconstruct": cmd_reconstruct, "interpolate": cmd_interpolate, "evaluate": cmd_evaluate,
                "directions": cmd_directions, "explore": cmd_explore, "refit-prior": cmd_refit_prior, "record-sizes": cmd_record_sizes, "pack": cmd_pack}
    try:
        return handlers[args.command](args)
    except AtlasError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
