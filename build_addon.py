"""Build the installable Blender extension zip: `python build_addon.py [--out dist] [--wheelhouse DIR]`.

Stages blender_addon/* plus the backend package, every model folder, the LICENSE and the backend's
runtime requirements into `atlasvae/`, then zips that folder's contents (blender_manifest.toml at the
zip root, as Blender extensions expect) to dist/atlasvae-<version>.zip. The manifest is checked first
(and its licence against LICENSE); the zip is then checked by Blender's own extension validator, the
one bundled with the bpy module, and any complaint fails the build. --wheelhouse DIR also downloads
the backend's wheels for this platform into DIR, for the add-on's offline install.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from blender_addon.bpyfree import installer
from blender_addon.bpyfree.locate import runtime_requirements

REPO = Path(__file__).resolve().parent
ADDON_SRC = REPO / "blender_addon"
MANIFEST = "blender_manifest.toml"
REQUIRED_FIELDS = ("schema_version", "id", "version", "name", "tagline", "maintainer", "type",
                   "blender_version_min", "license")
IGNORED = ("__pycache__", "*.pyc", "*.pyo", ".DS_Store", ".pytest_cache", ".mypy_cache", "*.lock", "*.tmp",
           "train_state.*", "samples_epoch*.png")
LICENSE = "LICENSE"
# The phrase a LICENSE file must contain for each licence the manifest may declare.
LICENSE_TEXTS = {"SPDX:GPL-3.0-or-later": "GNU GENERAL PUBLIC LICENSE\n                       Version 3"}


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


def check_license(manifest: dict[str, object], license_file: Path) -> None:
    """The manifest's licence must be one we know and the LICENSE file must be that licence's text."""
    declared = manifest["license"]
    assert isinstance(declared, list)
    for spdx in declared:
        phrase = LICENSE_TEXTS.get(str(spdx))
        if phrase is None:
            raise BuildError(f"manifest licence {spdx!r} has no LICENSE text this build knows "
                             f"(known: {', '.join(LICENSE_TEXTS)})")
        try:
            text = license_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise BuildError(f"{license_file}: cannot read the licence ({exc.strerror or exc})") from None
        if phrase not in text:
            raise BuildError(f"{license_file}: does not hold the text of {spdx}, which the manifest declares")


def validator_path() -> Path:
    """Blender's extension command-line tool, bundled with the bpy module."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or spec.origin is None:
        raise BuildError("Blender's extension validator comes with the bpy module, which this Python lacks: "
                         "run the build with the project's .venv (make addon)")
    found = sorted(Path(spec.origin).parent.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    if not found:
        raise BuildError(f"no blender_ext.py inside the bpy module at {Path(spec.origin).parent}")
    return found[-1]


def validate(zip_path: Path) -> None:
    """Run Blender's own `blender_ext.py validate` on the zip; BuildError carries its complaint."""
    proc = subprocess.run([sys.executable, str(validator_path()), "validate", str(zip_path)],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    output = "; ".join(line.strip() for line in (proc.stdout + proc.stderr).splitlines() if line.strip())
    if proc.returncode != 0 or "ERROR" in output:
        raise BuildError(f"{zip_path}: Blender's extension validator refused it: {output}")


def requirements_source(repo: Path = REPO) -> Path:
    """The backend's requirements list: backend/requirements.txt if present, else the repo's."""
    for path in (repo / "backend" / "requirements.txt", repo / "requirements.txt"):
        if path.is_file():
            return path
    raise BuildError(f"no requirements list found in {repo / 'backend'} or {repo}")


def stage(dest: Path, repo: Path = REPO) -> Path:
    """Copy everything the extension needs into `dest`/atlasvae and return that folder."""
    addon_src = repo / "blender_addon"
    check_license(read_manifest(addon_src / MANIFEST), repo / LICENSE)
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
    shutil.copy2(repo / LICENSE, root / LICENSE)
    lines = runtime_requirements(requirements_source(repo))
    (root / "requirements.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def build(out_dir: Path = REPO / "dist", repo: Path = REPO) -> Path:
    """Stage, zip and validate the extension; returns the zip path dist/atlasvae-<version>.zip.

    A zip the validator refuses is removed, so dist/ never holds one that Blender would reject.
    """
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
    try:
        validate(zip_path)
    except BuildError:
        zip_path.unlink(missing_ok=True)
        raise
    return zip_path


def download_wheels(dest: Path, build: installer.TorchBuild, repo: Path = REPO) -> list[Path]:
    """Download torch (the chosen build) and the other runtime requirements as wheels into `dest`."""
    lines = runtime_requirements(requirements_source(repo))
    torch_lines = [line for line in lines if line.split("=")[0].strip().lower() == "torch"]
    others = [line for line in lines if line not in torch_lines]
    dest.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--dest", str(dest)]
    index = ["--index-url", build.index_url] if build.index_url else []
    for command in ([*pip, *index, *torch_lines], [*pip, *others]):
        print("$ " + " ".join(command), file=sys.stderr)
        if subprocess.run(command).returncode != 0:
            raise BuildError(f"downloading wheels into {dest} failed (command above); nothing was installed")
    return sorted(dest.glob("*.whl"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "dist", help="output folder (default: dist)")
    parser.add_argument("--wheelhouse", type=Path, metavar="DIR",
                        help="also download the backend's wheels for this platform into DIR (offline install)")
    parser.add_argument("--torch-build", default=installer.default_build().key,
                        choices=[b.key for b in installer.builds_for()],
                        help="which torch build goes into the wheel folder (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        path = build(args.out)
        print(f"{path} ({path.stat().st_size / 1e6:.1f} MB, validated by Blender's extension validator)")
        if args.wheelhouse is not None:
            wheels = download_wheels(args.wheelhouse, installer.torch_build(args.torch_build))
            size = sum(w.stat().st_size for w in wheels) / 1e6
            print(f"{args.wheelhouse}: {len(wheels)} wheels, {size:.0f} MB; in Blender set the add-on's "
                  f"'Offline Wheel Folder' to it")
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
