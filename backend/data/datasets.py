"""Training data: find meshes in a folder (plain tree, ShapeNetCore v2, ModelNet), split them, cache points.

Each usable mesh becomes n_cache surface points in the unit ball, plus its bounding-box size before that
normalisation (its real size, for the sizes a model records). Both are cached per file outside the
user's data folder, keyed by the file's content, so a second run skips parsing; bad files are reported
and skipped rather than stopping the run. Only regular files are ever opened (a FIFO or a link to a device
named like a mesh is skipped unread); a link to a file is followed wherever it points, with a warning when
it leaves the folder, and links to folders are not followed (no loops, no walking half the disk).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sys
import tempfile
import threading
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from backend.data.meshio import MESH_SUFFIXES, Mesh, normalisation_of, not_regular_reason, parse_mesh, printable
from backend.data.procedural import FAMILIES, generate, item_seed
from backend.data.sampling import sample_surface
from backend.errors import Cancelled, ConfigError, DataError, MeshError
from backend.filemode import new_file_mode
from backend.limits import MAX_MESH_FILE_BYTES
from backend.regular import read_regular

CACHE_VERSION = 2  # 2: the unit ball counts only vertices some face uses (points of meshes with unused vertices moved)
CACHE_ENV = "ATLASVAE_CACHE"
SPLITS = ("train", "val", "test")
CACHE_POINTS = 4096  # surface points kept per shape; training picks its --points from them each step

_log = logging.getLogger(__name__)
_SYNSET = re.compile(r"^\d{8}$")
_MODELNET_SPLITS = ("train", "test")


@dataclass
class PointSets:
    """Surface point clouds of many shapes, each normalised to the unit ball, with names, labels and sizes."""

    points: np.ndarray
    names: list[str]
    labels: list[str]
    # (N, 3) float32: each shape's axis-aligned bounding-box size before the unit-ball normalisation, in its
    # file's units (metres for the corpus and the procedural families), Z up; what a model's sizes come from
    extents: np.ndarray
    skipped: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.names)


def default_cache_dir() -> Path:
    """$ATLASVAE_CACHE if set, else ~/.cache/atlasvae/points (honouring $XDG_CACHE_HOME)."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "atlasvae" / "points"


def find_mesh_files(root: str | os.PathLike[str]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Every mesh file under root (suffix match, any case, hidden files and folders skipped; sorted), and the
    links to folders that were not followed, with the reason."""
    base = _check_root(root)
    found, not_followed = [], []
    for folder, subfolders, filenames in os.walk(base):
        subfolders[:] = [d for d in subfolders if not d.startswith(".")]
        for name in subfolders:
            if os.path.islink(os.path.join(folder, name)):
                not_followed.append((_relative(Path(folder) / name, base),
                                     "a link to a folder; links to folders are not followed"))
        for filename in filenames:
            if not filename.startswith(".") and Path(filename).suffix.lower() in MESH_SUFFIXES:
                found.append(Path(folder) / filename)
    return sorted(found, key=lambda path: _relative(path, base)), sorted(not_followed)


def label_of(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> str:
    """Class of a file: ShapeNet synset id, ModelNet class folder, or else its parent folder's name."""
    base, parts = Path(root), _parts(Path(path), Path(root))
    synset = _shapenet_label(parts, base)
    if synset:
        return synset
    modelnet = _modelnet_info(parts, base)
    if modelnet:
        return modelnet[0]
    return parts[-2] if len(parts) > 1 else printable(base.name)


def split_files(
    files: Sequence[str | os.PathLike[str]],
    root: str | os.PathLike[str],
    val_fraction: float = 0.1,
    test_fraction: float = 0.0,
    seed: int = 0,
) -> dict[str, list[Path]]:
    """Assign files to train/val/test by a hash of their path relative to root.

    Adding or removing a file never moves another one. ModelNet files keep their own split: files in a
    test/ folder always go to test (test_fraction does not apply to them) and val is drawn from train/.
    With two or more files and val_fraction > 0, val gets at least one file and train keeps at least one.
    """
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
            raise ConfigError(f"{name} must be a number in [0, 1), got {value!r}")
    if val_fraction + test_fraction >= 1.0:
        total = val_fraction + test_fraction
        raise ConfigError(f"val_fraction + test_fraction must be below 1, got {total:g}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ConfigError(f"seed must be an integer, got {seed!r}")
    base = Path(root)
    buckets: dict[str, list[tuple[float, Path]]] = {name: [] for name in SPLITS}
    movable: set[Path] = set()
    for item in files:
        path = Path(item)
        rel = _relative(path, base)
        digest = hashlib.sha256(f"{seed}\0{rel}".encode()).digest()
        draw = int.from_bytes(digest[:8], "big") / 2.0**64
        modelnet = _modelnet_info(_parts(path, base), base)
        if modelnet and modelnet[1] == "test":
            buckets["test"].append((draw, path))
            continue
        movable.add(path)
        val_from = 0.0 if modelnet else test_fraction
        if draw < val_from:
            buckets["test"].append((draw, path))
        elif draw < val_from + val_fraction:
            buckets["val"].append((draw, path))
        else:
            buckets["train"].append((draw, path))
    _guarantee_minimums(buckets, movable, val_fraction > 0)
    return {
        name: sorted((path for _, path in entries), key=lambda path: _relative(path, base))
        for name, entries in buckets.items()
    }


def load_folder(
    root: str | os.PathLike[str],
    n_cache: int = CACHE_POINTS,
    cache_dir: str | os.PathLike[str] | None = None,
    max_faces: int = 2_000_000,
    progress: bool = True,
    cancel: threading.Event | None = None,
) -> PointSets:
    """Sample n_cache unit-ball surface points from every usable mesh under root (cached per file).

    Setting `cancel` stops the reading between files (and between chunks of a large file) with Cancelled.
    """
    base = _check_root(root)
    _check_positive(n_cache, "n_cache")
    _check_positive(max_faces, "max_faces")
    files, not_followed = find_mesh_files(base)
    if not files:
        suffixes = ", ".join(sorted(MESH_SUFFIXES))
        raise DataError(f"no mesh files ({suffixes}) found under {base}")
    cache = _PointCache(Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir())
    clouds: list[np.ndarray] = []
    extents: list[np.ndarray] = []
    names: list[str] = []
    labels: list[str] = []
    skipped: list[tuple[str, str]] = list(not_followed)
    warnings: list[str] = []
    real_base = base.resolve()
    bar = tqdm(files, desc="Reading meshes", unit="mesh", file=sys.stderr, disable=not progress)
    for done, path in enumerate(bar):
        name = _relative(path, base)
        _check_cancel(cancel, base, done, len(files))
        try:
            problem = not_regular_reason(path)
            if problem:
                skipped.append((name, f"{problem}; skipped without reading it"))
                continue
            data = read_regular(path, MAX_MESH_FILE_BYTES, MeshError,
                                lambda: _check_cancel(cancel, base, done, len(files)))
            key = _cache_key(data, path, n_cache)
            points, extent = cache.get(key, n_cache), cache.get_extents(key)
            if points is None or extent is None:
                points, extent = _sample_file(data, path, n_cache, max_faces, key)
                cache.put(key, points, extent)
        except MeshError as exc:
            skipped.append((name, str(exc).removeprefix(f"{path}: ")))
            continue
        except OSError as exc:
            skipped.append((name, f"cannot be read ({exc.strerror or exc})"))
            continue
        clouds.append(points)
        extents.append(extent)
        names.append(name)
        labels.append(label_of(path, base))
        real = path.resolve()
        if not real.is_relative_to(real_base):
            warnings.append(f"{name}: read through a link that leaves the data folder (to {printable(str(real))})")
    if not clouds:
        examples = "; ".join(f"{n}: {r}" for n, r in skipped[:3])
        raise DataError(f"none of the {len(files)} mesh files under {base} could be used ({examples})")
    return PointSets(points=np.stack(clouds).astype(np.float32), names=names, labels=labels,
                     extents=np.stack(extents).astype(np.float32), skipped=skipped, warnings=warnings)


def procedural_point_sets(
    families: Iterable[str], per_family: int, seed: int, n_cache: int = CACHE_POINTS
) -> PointSets:
    """Point sets of procedural shapes built in memory, labelled by family; deterministic for a seed.

    Their extents are the generated meshes' own sizes: the families are built in metres."""
    names_in = [families] if isinstance(families, str) else list(families)
    if not names_in:
        raise ConfigError(f"families must name at least one of {', '.join(FAMILIES)}")
    _check_positive(per_family, "per_family")
    _check_positive(n_cache, "n_cache")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be an integer >= 0, got {seed!r}")
    clouds, extents, names, labels = [], [], [], []
    for family in dict.fromkeys(names_in):
        for index in range(per_family):
            shape_seed = item_seed(seed, index)
            mesh = generate(family, shape_seed)
            rng = np.random.default_rng([shape_seed, zlib.crc32(family.encode())])
            clouds.append(sample_surface(_unit_ball(mesh), n_cache, rng))
            extents.append(np.ptp(mesh.vertices, axis=0))
            names.append(f"{family}/{index:04d}")
            labels.append(family)
    return PointSets(points=np.stack(clouds), names=names, labels=labels,
                     extents=np.stack(extents).astype(np.float32), skipped=[])


def _guarantee_minimums(
    buckets: dict[str, list[tuple[float, Path]]], movable: set[Path], want_val: bool
) -> None:
    """Keep train non-empty and, with two or more files, give val one file, moving the closest draws."""
    total = sum(len(entries) for entries in buckets.values())

    def move(source: str, target: str, largest: bool) -> None:
        candidates = [entry for entry in buckets[source] if entry[1] in movable]
        if candidates:
            chosen = (max if largest else min)(candidates, key=lambda entry: entry[0])
            buckets[source].remove(chosen)
            buckets[target].append(chosen)

    if not buckets["train"]:
        move("val", "train", largest=True)
    if not buckets["train"]:
        move("test", "train", largest=True)
    if want_val and total >= 2 and not buckets["val"]:
        if len(buckets["train"]) >= 2:
            move("train", "val", largest=False)
        else:
            move("test", "val", largest=True)


def _sample_file(data: bytes, path: Path, n: int, max_faces: int, key: str) -> tuple[np.ndarray, np.ndarray]:
    """n unit-ball surface points of the file's mesh and its bounding-box size (3,) in the file's units
    (of the vertices some face uses, as the unit ball counts them)."""
    mesh = parse_mesh(data, path, max_faces=max_faces)
    rng = np.random.default_rng(int(key[:16], 16))
    used = mesh.vertices[np.unique(mesh.faces)]
    return sample_surface(_unit_ball(mesh), n, rng), np.ptp(used, axis=0).astype(np.float32)


def _unit_ball(mesh: Mesh) -> Mesh:
    return Mesh(vertices=normalisation_of(mesh.vertices, mesh.faces).apply(mesh.vertices), faces=mesh.faces)


def _check_cancel(cancel: threading.Event | None, base: Path, done: int, total: int) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled(f"{base}: cancelled while reading meshes ({done} of {total} read)")


def _cache_key(data: bytes, path: Path, n: int) -> str:
    """Hash of everything the cached points depend on: content, format, point count, cache version."""
    digest = hashlib.sha256(f"atlasvae-points:{CACHE_VERSION}:{n}:{path.suffix.lower()}\0".encode())
    digest.update(data)
    return digest.hexdigest()


class _PointCache:
    """Per file content and point count: `KEY.npy` holds the (n, 3) points and `KEY.extents.npy` the shape's
    (3,) bounding-box size. Writes are atomic; failures only disable caching."""

    EXTENTS = ".extents"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._usable = True

    def get(self, key: str, n: int) -> np.ndarray | None:
        """The cached (n, 3) points of `key`, or None when absent or unusable."""
        return self._load(key, (n, 3))

    def get_extents(self, key: str) -> np.ndarray | None:
        """The cached (3,) bounding-box size of `key`'s shape, or None (caches from before extents were kept)."""
        return self._load(key + self.EXTENTS, (3,))

    def _load(self, name: str, shape: tuple[int, ...]) -> np.ndarray | None:
        path = self.folder / f"{name}.npy"
        if not path.is_file():
            return None
        try:
            points = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            _log.warning("ignoring unreadable cache file %s: %s", path, exc)
            return None
        if not isinstance(points, np.ndarray) or points.shape != shape or points.dtype != np.float32 \
                or not np.all(np.isfinite(points)):
            _log.warning("ignoring cache file %s with unexpected contents", path)
            return None
        return points

    def put(self, key: str, points: np.ndarray, extents: np.ndarray) -> None:
        """Store `key`'s points and extents (the points last: a points file means both are there)."""
        self._save(key + self.EXTENTS, extents)
        self._save(key, points)

    def _save(self, name: str, array: np.ndarray) -> None:
        if not self._usable:
            return
        tmp = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{name[:16]}.", suffix=".tmp", dir=self.folder)
            os.chmod(tmp, new_file_mode(self.folder / f"{name}.npy"))
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, array.astype(np.float32), allow_pickle=False)
            os.replace(tmp, self.folder / f"{name}.npy")
        except OSError as exc:
            self._usable = False
            _log.warning("point cache %s is not writable (%s); continuing without a cache", self.folder, exc)
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)


def _check_root(root: str | os.PathLike[str]) -> Path:
    base = Path(root).expanduser()
    if not base.exists():
        raise DataError(f"data folder not found: {base}")
    if not base.is_dir():
        raise DataError(f"{base} is not a folder")
    return base


def _check_positive(value: object, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{what} must be a positive integer, got {value!r}")


def _relative(path: Path, root: Path) -> str:
    """`path` relative to `root` as printable text (names are shown, hashed and stored as UTF-8)."""
    try:
        return printable(path.relative_to(root).as_posix())
    except ValueError:
        return printable(path.as_posix())


def _parts(path: Path, root: Path) -> tuple[str, ...]:
    return tuple(_relative(path, root).split("/"))


def _shapenet_label(parts: tuple[str, ...], root: Path) -> str | None:
    """Synset of <synset>/<model>/models/model_normalized.obj (root may be the synset folder itself)."""
    if len(parts) < 3 or parts[-2:] != ("models", "model_normalized.obj"):
        return None
    synset = parts[-4] if len(parts) >= 4 else printable(root.name)
    return synset if _SYNSET.match(synset) else None


def _modelnet_info(parts: tuple[str, ...], root: Path) -> tuple[str, str] | None:
    """(class, split) of <class>/<train|test>/<name>.off (root may be the class folder itself)."""
    if len(parts) < 2 or not parts[-1].lower().endswith(".off") or parts[-2] not in _MODELNET_SPLITS:
        return None
    label = parts[-3] if len(parts) >= 3 else printable(root.name)
    return label, parts[-2]
