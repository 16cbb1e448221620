"""Write the fit benchmark's real meshes (Sweet Home 3D catalogue models) as OBJ files, upright.

Get the package first (outside the repo):
    apt-get download sweethome3d-furniture && dpkg-deb -x sweethome3d-furniture_*.deb /work/data/sh3d
then:
    python -m bench.prepare_fit_meshes /work/data/sh3d/usr/share/sweethome3d/furniture --out /work/data/fitset

Each catalogue (.sh3f, a zip) lists models as name#N / model#N / modelRotation#N; the rotation (row-major
3x3) turns a model upright as the catalogue shows it, and is applied here so every mesh is in the same
frame convention. The set is chosen for variety: animals, people, vehicles, furniture, mechanical parts.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from backend.data.meshio import Mesh, load_mesh, save_mesh

# (output name, catalogue file, entry number): what the benchmark reconstructs.
FIT_SET: tuple[tuple[str, str, int], ...] = (
    ("deer", "BlendSwap-CC-0.sh3f", 14),
    ("horse", "BlendSwap-CC-0.sh3f", 97),
    ("chicken", "BlendSwap-CC-0.sh3f", 94),
    ("bulldog", "BlendSwap-CC-BY.sh3f", 89),
    ("siamese_cat", "BlendSwap-CC-BY.sh3f", 100),
    ("teddy_bear", "BlendSwap-CC-0.sh3f", 51),
    ("male", "KatorLegaz.sh3f", 64),
    ("female", "Reallusion.sh3f", 1),
    ("motorbike", "BlendSwap-CC-0.sh3f", 123),
    ("biplane", "BlendSwap-CC-0.sh3f", 10),
    ("fork_lift", "BlendSwap-CC-0.sh3f", 119),
    ("bike", "BlendSwap-CC-BY.sh3f", 88),
    ("fire_hydrant", "KatorLegaz.sh3f", 79),
    ("extinguisher", "BlendSwap-CC-0.sh3f", 82),
    ("table_fan", "BlendSwap-CC-0.sh3f", 47),
    ("oak_chair", "BlendSwap-CC-0.sh3f", 26),
)


def catalogue_entries(archive: zipfile.ZipFile) -> dict[str, str]:
    """The catalogue's key=value lines (Java properties, latin-1 with \\u escapes)."""
    raw = archive.read("PluginFurnitureCatalog.properties").decode("latin-1")
    out: dict[str, str] = {}
    for line in raw.splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip().encode("latin-1").decode("unicode_escape")
    return out


def load_entry(catalogue: Path, number: int) -> tuple[str, Mesh]:
    """The catalogue entry's display name and its mesh with the catalogue rotation applied."""
    with zipfile.ZipFile(catalogue) as archive:
        entries = catalogue_entries(archive)
        model = entries[f"model#{number}"].lstrip("/")
        folder = model.rsplit("/", 1)[0] + "/"
        with tempfile.TemporaryDirectory() as tmp:
            for member in archive.namelist():
                if member.startswith(folder):
                    archive.extract(member, tmp)
            mesh = load_mesh(Path(tmp) / model)
    rotation = entries.get(f"modelRotation#{number}")
    vertices = mesh.vertices
    if rotation:
        vertices = vertices @ np.array([float(v) for v in rotation.split()]).reshape(3, 3).T
    return entries.get(f"name#{number}", model), Mesh(vertices, mesh.faces)


def main(argv: list[str] | None = None) -> int:
    """Write every FIT_SET mesh into --out and list where each came from."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("furniture", type=Path, help="the package's usr/share/sweethome3d/furniture folder")
    parser.add_argument("--out", type=Path, required=True, help="folder for <name>.obj (outside the repo)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, catalogue, number in FIT_SET:
        title, mesh = load_entry(args.furniture / catalogue, number)
        save_mesh(args.out / f"{name}.obj", mesh)
        print(f"{name}.obj  <- {catalogue} entry {number} ({title}), {len(mesh.faces)} faces")
    return 0


if __name__ == "__main__":
    sys.exit(main())
