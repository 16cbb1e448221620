"""Build the installable Blender extension zip: `python build_addon.py [--out dist]`.

Stages blender_addon/* plus the backend package, every model folder and the backend's runtime
requirements into `atlasvae/`, then zips that folder's contents (blender_manifest.toml at the zip
root, as Blender extensions expect) to dist/atlasvae-<version>.zip. The manifest is checked first.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tomllib
import zipfile
from pathlib import Path

from blender_addon.bpyfree.locate import runtime_requirements

REPO = Path(__file__).resolve().parent
ADDON_SRC = REPO / "blender_addon"
MANIFEST = "blender_manifest.toml"
REQUIRED_FIELDS = ("schema_version", "id", "version", "name", "tagline", "maintainer", "type",
                   "blender_version_min", "license")
IGNORED = ("__pycache__", "*.pyc", "*.pyo", ".DS_Store", ".pytest_cache", ".mypy_cache", "*.lock", "*.tmp",
           "train_state.*", "samples_epoch*.png")


class BuildError(RuntimeError):
    """The add-on cannot be built as it stands; the message names the file and the problem."""


def read_manifest(path: Path) -> dict[str, object]:
    """Parse and check the manifest: every required field present and non-empty, tagline unpunctuated."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BuildError(f"{path}: manifest not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise BuildError(f"{path}: not valid TOML ({exc})") from None
    missing = [key for key in REQUIRED_FIELDS if not data.get(key)]
    if missing:
        raise BuildError(f"{path}: missing required field(s): {', '.join(missing)}")
    if data["type"] != "add-on":
        raise BuildError(f"{path}: field 'type' must be \"add-on\", got {data['type']!r}")
    tagline = str(data["tagline"])
    if not tagline[-1].isalnum() and tagline[-1] not in ")]}":
        raise BuildError(f"{path}: field 'tagline' must not end with punctuation, got {tagline!r}")
    licenses = data["license"]
    if not isinstance(licenses, list) or not all(str(x).startswith("SPDX:") for x in licenses):
        raise BuildError(f"{path}: field 'license' must be a list of \"SPDX:...\" strings, got {licenses!r}")
    return data


def requirements_source(repo: Path = REPO) -> Path:
    """The backend's requirements list: backend/requirements.txt if present, else the repo's."""
    for path in (repo / "backend" / "requirements.txt", repo / "requirements.txt"):
        if path.is_file():
            return path
    raise BuildError(f"no requirements list found in {repo / 'backend'} or {repo}")


def stage(dest: Path, repo: Path = REPO) -> Path:
    """Copy everything the extension needs into `dest`/atlasvae and return that folder."""
    addon_src = repo / "blender_addon"
    read_manifest(addon_src / MANIFEST)
    if not (repo / "backend" / "__init__.py").is_file():
        raise BuildError(f"{repo / 'backend'}: backend package not found")
    root = Path(dest) / "atlasvae"
    if root.exists():
        shutil.rmtree(root)
    ignore = shutil.ignore_patterns(*IGNORED)
    shutil.copytree(addon_src, root, ignore=ignore)
    shutil.copytree(repo / "backend", root / "backend", ignore=ignore)
    models = repo / "models"
    if models.is_dir():
        shutil.copytree(models, root / "models", ignore=ignore)
    else:
        (root / "models").mkdir()
    lines = runtime_requirements(requirements_source(repo))
    (root / "requirements.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def build(out_dir: Path = REPO / "dist", repo: Path = REPO) -> Path:
    """Stage and zip the extension; returns the zip path dist/atlasvae-<version>.zip."""
    out_dir = Path(out_dir)
    staging = out_dir / "staging"
    root = stage(staging, repo)
    version = read_manifest(root / MANIFEST)["version"]
    zip_path = out_dir / f"atlasvae-{version}.zip"
    zip_path.unlink(missing_ok=True)
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(root).as_posix())
    shutil.rmtree(staging)
    return zip_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "dist", help="output folder (default: dist)")
    args = parser.parse_args(argv)
    try:
        path = build(args.out)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
