"""Debian packages into a cache folder: `apt-get download`, then `dpkg-deb -x` (no system-wide install)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

RESERVED = ("libcgal-demo", "openscad-testing-data", "flightgear-data-ai")  # kept for independent checks
UNPACKED_STAMP = ".unpacked"


class FetchError(RuntimeError):
    """A package that could not be downloaded or unpacked, with what to do about it."""


def _run(cmd: list[str], cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise FetchError(f"{cmd[0]}: command not found (the corpus builder needs Debian's apt-get and "
                         f"dpkg-deb)") from None
    if done.returncode != 0:
        raise FetchError(f"{' '.join(cmd)} failed (exit {done.returncode}): {done.stderr.strip()[-500:]}")
    return done.stdout


def download(package: str, cache: Path) -> Path:
    """The package's .deb in `cache`, downloaded with apt-get only when no .deb of it is there yet."""
    if package in RESERVED:
        raise FetchError(f"{package} is reserved for independent checks and must not be used for training")
    cache.mkdir(parents=True, exist_ok=True)
    found = sorted(cache.glob(f"{package}_*.deb"))
    if found:
        return found[-1]
    print(f"downloading {package} with apt-get (a few hundred MB; run `apt-get update` first if it is not found)",
          file=sys.stderr, flush=True)
    _run(["apt-get", "download", package], cwd=cache)
    found = sorted(cache.glob(f"{package}_*.deb"))
    if not found:
        raise FetchError(f"apt-get download {package} wrote no {package}_*.deb into {cache}")
    return found[-1]


def version_of(deb: Path) -> str:
    """The Debian version recorded in a .deb's control file."""
    return _run(["dpkg-deb", "-f", str(deb), "Version"]).strip()


def unpack(deb: Path, target: Path) -> Path:
    """Unpack `deb` into `target` once; a stamp file marks a finished unpack, so a cut-short one is redone."""
    stamp = target / UNPACKED_STAMP
    if stamp.is_file() and stamp.read_text().strip() == deb.name:
        return target
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    print(f"unpacking {deb.name} into {target}", file=sys.stderr, flush=True)
    _run(["dpkg-deb", "-x", str(deb), str(target)])
    stamp.write_text(deb.name + "\n")
    return target


def fetch(package: str, cache: Path) -> tuple[Path, str]:
    """(unpacked root, Debian version) of `package`, reusing whatever the cache already holds."""
    deb = download(package, cache / "debs")
    return unpack(deb, cache / "unpacked" / package), version_of(deb)


def ensure_assimp() -> str:
    """Path of the `assimp` command, installing assimp-utils with apt-get when it is missing."""
    found = shutil.which("assimp")
    if found:
        return found
    print("assimp not found: installing assimp-utils with apt-get", file=sys.stderr, flush=True)
    try:
        _run(["apt-get", "install", "-y", "--no-install-recommends", "assimp-utils"])
    except FetchError as exc:
        raise FetchError(f"the `assimp` command is needed for this source and could not be installed ({exc}); "
                         f"install it yourself with `sudo apt-get install assimp-utils`, or leave this source "
                         f"out with --sources") from None
    found = shutil.which("assimp")
    if not found:
        raise FetchError("assimp-utils was installed but no `assimp` command is on PATH")
    return found
