"""Seeded procedural shape families (sword, plane, chair, table, mug, lamp) for training without downloads.

Each shape is a set of simple closed parts (trimesh boxes, cylinders, cones, capsules, tori, icospheres,
solids of revolution, convex hulls and lofted tubes) placed with rigid transforms and concatenated into
one mesh; parts overlap where they join. Units are metres and Z is up, as in Blender. Every family
draws its style, proportions and part counts from the seed, so members of a family differ visibly.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import trimesh

from backend.data.meshio import MESH_SUFFIXES, Mesh, save_mesh
from backend.errors import ConfigError

FAMILIES: tuple[str, ...] = ("sword", "plane", "chair", "table", "mug", "lamp")

_Vec = Sequence[float] | np.ndarray
_Points = Sequence[Sequence[float]] | Sequence[np.ndarray] | np.ndarray


def generate(family: str, seed: int) -> Mesh:
    """Build one member of `family`; the same (family, seed) always gives the same mesh."""
    _check_family(family)
    _check_count(seed, "seed", minimum=0)
    rng = np.random.default_rng([int(seed), zlib.crc32(family.encode())])
    parts = _Parts()
    _BUILDERS[family](parts, rng)
    return parts.mesh()


def item_seed(seed: int, index: int) -> int:
    """Seed of the index-th member of a set drawn with `seed`: sets with different seeds do not overlap."""
    _check_count(seed, "seed", minimum=0)
    _check_count(index, "index", minimum=0)
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1, dtype=np.uint64)[0])


def write_dataset(
    out_dir: str | os.PathLike[str],
    families: Iterable[str],
    per_family: int,
    seed: int,
    suffix: str = ".obj",
) -> list[Path]:
    """Write per_family meshes of each family to out_dir/<family>/<family>_<i:04d><suffix>."""
    names = _check_families(families)
    _check_count(per_family, "per_family", minimum=1)
    _check_count(seed, "seed", minimum=0)
    if not isinstance(suffix, str) or suffix.lower() not in MESH_SUFFIXES:
        raise ConfigError(f"suffix must be one of {', '.join(sorted(MESH_SUFFIXES))}, got {suffix!r}")
    root = Path(out_dir)
    written: list[Path] = []
    for family in names:
        folder = root / family
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create output folder {folder}: {exc.strerror or exc}") from exc
        for index in range(per_family):
            path = folder / f"{family}_{index:04d}{suffix}"
            save_mesh(path, generate(family, item_seed(seed, index)))
            written.append(path)
    return written


def _check_family(family: object) -> None:
    if family not in FAMILIES:
        raise ConfigError(f"unknown shape family {family!r}; choose from {', '.join(FAMILIES)}")


def _check_families(families: Iterable[str]) -> list[str]:
    names = [families] if isinstance(families, str) else list(families)
    if not names:
        raise ConfigError("families must name at least one shape family")
    for family in names:
        _check_family(family)
    return list(dict.fromkeys(names))


def _check_count(value: object, what: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{what} must be an integer >= {minimum}, got {value!r}")


# ----------------------------------------------------------------------------------------- geometry


def _translate(offset: _Vec) -> np.ndarray:
    return trimesh.transformations.translation_matrix(np.asarray(offset, dtype=float))


def _rotate(angle: float, axis: _Vec, point: _Vec | None = None) -> np.ndarray:
    return trimesh.transformations.rotation_matrix(angle, np.asarray(axis, dtype=float), point)


def _scale(x: float, y: float, z: float) -> np.ndarray:
    return np.diag([x, y, z, 1.0])


def _align_z(direction: _Vec) -> np.ndarray:
    """Rotation taking +Z onto `direction`."""
    d = np.asarray(direction, dtype=float)
    return trimesh.geometry.align_vectors([0.0, 0.0, 1.0], d / np.linalg.norm(d))


def _outward(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """Flip a closed mesh whose faces were built inside out."""
    if mesh.volume < 0:
        mesh.invert()
    return mesh


def _loft(rings: np.ndarray) -> trimesh.Trimesh:
    """Closed solid through (m, k, 3) cross-section rings, capped at both ends."""
    m, k, _ = rings.shape
    i, j = np.meshgrid(np.arange(m - 1), np.arange(k), indexing="ij")
    a = (i * k + j).ravel()
    b = (i * k + (j + 1) % k).ravel()
    c = ((i + 1) * k + (j + 1) % k).ravel()
    d = ((i + 1) * k + j).ravel()
    first, last = np.arange(k), (m - 1) * k + np.arange(k)
    faces = np.concatenate(
        [
            np.stack([a, b, c], axis=1),
            np.stack([a, c, d], axis=1),
            np.stack([np.full(k, m * k), np.roll(first, -1), first], axis=1),
            np.stack([np.full(k, m * k + 1), last, np.roll(last, -1)], axis=1),
        ]
    )
    caps = np.stack([rings[0].mean(axis=0), rings[-1].mean(axis=0)])
    vertices = np.concatenate([rings.reshape(-1, 3), caps])
    return _outward(trimesh.Trimesh(vertices=vertices, faces=faces, process=False))


def _frames(path: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation-minimising (normal, binormal) frames along a polyline."""
    tangents = np.gradient(path, axis=0)
    tangents /= np.linalg.norm(tangents, axis=1, keepdims=True)
    normal = np.cross(tangents[0], np.eye(3)[np.argmin(np.abs(tangents[0]))])
    normals = np.empty_like(path)
    for i, t in enumerate(tangents):
        normal = normal - normal.dot(t) * t
        normal /= np.linalg.norm(normal)
        normals[i] = normal
    return normals, np.cross(tangents, normals)


class _Parts:
    """Collects closed primitive meshes placed in world space and concatenates them into one Mesh."""

    def __init__(self) -> None:
        self._meshes: list[trimesh.Trimesh] = []

    def add(self, mesh: trimesh.Trimesh, transform: np.ndarray | None = None) -> None:
        if transform is not None:
            mesh.apply_transform(transform)
        self._meshes.append(mesh)

    def extend(self, other: _Parts, transform: np.ndarray) -> None:
        for mesh in other._meshes:
            self.add(mesh, transform)

    def box(self, size: _Vec, center: _Vec, rotation: np.ndarray | None = None) -> None:
        placed = _translate(center) if rotation is None else _translate(center) @ rotation
        self.add(trimesh.creation.box(extents=np.asarray(size, dtype=float)), placed)

    def rod(self, start: _Vec, end: _Vec, radius: float, sections: int = 12) -> None:
        segment = np.array([start, end], dtype=float)
        self.add(trimesh.creation.cylinder(radius=radius, segment=segment, sections=sections))

    def disc(self, center: _Vec, radius_x: float, radius_y: float, height: float, sections: int = 24) -> None:
        """Flat elliptic cylinder around +Z (table tops, bases, sword guards)."""
        mesh = trimesh.creation.cylinder(radius=1.0, height=height, sections=sections)
        self.add(mesh, _translate(center) @ _scale(radius_x, radius_y, 1.0))

    def capsule(self, start: _Vec, end: _Vec, radius: float) -> None:
        s, e = np.asarray(start, dtype=float), np.asarray(end, dtype=float)
        mesh = trimesh.creation.capsule(height=float(np.linalg.norm(e - s)), radius=radius, count=[10, 8])
        self.add(mesh, _translate((s + e) / 2) @ _align_z(e - s))

    def ball(self, center: _Vec, radius: float, stretch: _Vec = (1.0, 1.0, 1.0), detail: int = 2) -> None:
        mesh = trimesh.creation.icosphere(subdivisions=detail, radius=radius)
        self.add(mesh, _translate(center) @ _scale(*stretch))

    def cone(self, base: _Vec, tip: _Vec, radius: float, sections: int = 16) -> None:
        b, t = np.asarray(base, dtype=float), np.asarray(tip, dtype=float)
        mesh = trimesh.creation.cone(radius=radius, height=float(np.linalg.norm(t - b)), sections=sections)
        self.add(mesh, _translate(b) @ _align_z(t - b))

    def torus(self, center: _Vec, major: float, minor: float, normal: _Vec = (0.0, 0.0, 1.0)) -> None:
        mesh = trimesh.creation.torus(major_radius=major, minor_radius=minor, major_sections=24,
                                      minor_sections=8)
        self.add(mesh, _translate(center) @ _align_z(normal))

    def hull(self, points: _Points) -> None:
        self.add(trimesh.convex.convex_hull(np.asarray(points, dtype=float)))

    def lathe(self, profile: _Points, base: _Vec = (0.0, 0.0, 0.0), axis: _Vec = (0.0, 0.0, 1.0)) -> None:
        """Solid of revolution of an (r, h) outline: either axis to axis, or a closed loop off the axis."""
        outline = np.asarray(profile, dtype=float)
        if outline[0, 0] > 0.0:
            outline = np.vstack([outline, outline[:1]])
        mesh = _outward(trimesh.creation.revolve(outline, sections=24))
        self.add(mesh, _translate(base) @ _align_z(axis))

    def frustum(self, base: _Vec, top: _Vec, r_base: float, r_top: float) -> None:
        b, t = np.asarray(base, dtype=float), np.asarray(top, dtype=float)
        h = float(np.linalg.norm(t - b))
        self.lathe([(0, 0), (r_base, 0), (r_top, h), (0, h)], b, t - b)

    def tube(self, path: _Points, radius: float, sections: int = 10) -> None:
        """A round tube along a polyline, capped at both ends (handles, bent poles)."""
        points = np.asarray(path, dtype=float)
        normals, binormals = _frames(points)
        angle = np.linspace(0.0, 2 * np.pi, sections, endpoint=False)
        cos, sin = np.cos(angle)[None, :, None], np.sin(angle)[None, :, None]
        self.add(_loft(points[:, None] + radius * (cos * normals[:, None] + sin * binormals[:, None])))

    def loft(self, rings: np.ndarray) -> None:
        self.add(_loft(np.asarray(rings, dtype=float)))

    def mesh(self) -> Mesh:
        offsets = np.cumsum([0] + [len(m.vertices) for m in self._meshes[:-1]])
        vertices = np.concatenate([np.asarray(m.vertices) for m in self._meshes])
        faces = np.concatenate([np.asarray(m.faces) + o for m, o in zip(self._meshes, offsets)])
        return Mesh(vertices=vertices, faces=faces)


# ------------------------------------------------------------------------------------------- swords


_GUARD_WIDTHS = {"long": (0.2, 0.3), "broad": (0.18, 0.28), "short": (0.08, 0.14), "sabre": (0.08, 0.14)}


def _sword(p: _Parts, rng: np.random.Generator) -> None:
    """Blade along +Z from the guard at z = 0, grip and pommel below."""
    u = rng.uniform
    style = str(rng.choice(["arming", "long", "broad", "rapier", "short", "sabre"]))
    length, width = {
        "arming": (u(0.68, 0.82), u(0.04, 0.055)),
        "long": (u(0.88, 1.08), u(0.04, 0.055)),
        "broad": (u(0.68, 0.85), u(0.06, 0.085)),
        "rapier": (u(0.9, 1.05), u(0.014, 0.022)),
        "short": (u(0.42, 0.58), u(0.045, 0.065)),
        "sabre": (u(0.65, 0.88), u(0.03, 0.042)),
    }[style]
    thickness = width * (u(0.4, 0.55) if style == "rapier" else u(0.16, 0.26))
    _blade(p, rng, style, length, width, thickness)
    guards = {"rapier": ["cross", "cup"], "sabre": ["disc", "disc", "bar"]}.get(
        style, ["bar", "cross", "swept", "disc"]
    )
    guard_width = u(*_GUARD_WIDTHS.get(style, (0.14, 0.24)))
    guard_height = u(0.012, 0.024)
    _guard(p, rng, str(rng.choice(guards)), guard_width, guard_height, width, thickness)
    grip_len = u(0.2, 0.28) if style == "long" else u(0.09, 0.14)
    grip_r = u(0.011, 0.016)
    top, bottom = -guard_height, -guard_height - grip_len
    if rng.random() < 0.5:
        p.rod((0, 0, bottom), (0, 0, top), grip_r)
    else:
        r, h = grip_r, grip_len
        p.lathe([(0, 0), (r * 0.85, 0), (r * 1.15, h / 2), (r * 0.85, h), (0, h)], (0, 0, bottom))
    for z in np.linspace(bottom, top, int(rng.choice([0, 0, 3, 4, 5])) + 2)[1:-1]:
        p.torus((0, 0, z), grip_r, 0.0025)
    _pommel(p, rng, bottom, grip_r)


def _blade(
    p: _Parts, rng: np.random.Generator, style: str, length: float, width: float, thick: float
) -> None:
    """Loft of diamond cross-sections along a straight or (sabre) curved centre line, ending in a point."""
    u = rng.uniform
    tip = width * (u(3.0, 6.0) if style == "rapier" else u(1.0, 2.8))
    s = np.linspace(0.0, 1.0, 9)
    outline = str(rng.choice(["tapered", "leaf", "parallel"]))
    widths = {
        "tapered": 1.0 - u(0.25, 0.45) * s,
        "leaf": 1.0 + u(0.12, 0.25) * np.sin(np.pi * s * 0.8) - 0.2 * s,
        "parallel": np.ones_like(s),
    }[outline]
    body = (length - tip) / length
    stations = np.concatenate([s * body, [body + (1 - body) * 0.55, 1.0]]) * length
    half_w = np.concatenate([widths, [widths[-1] * 0.45, 0.02]]) * width / 2
    half_t = np.concatenate([np.ones_like(s), [0.6, 0.05]]) * thick / 2
    zeros = np.zeros_like(stations)
    if style == "sabre":
        radius = u(2.5, 5.0) * length  # the blade bends towards -X on a circle of this radius
        angle = stations / radius
        centre = np.stack([radius * (np.cos(angle) - 1.0), zeros, radius * np.sin(angle)], axis=1)
        across = np.stack([np.cos(angle), zeros, np.sin(angle)], axis=1)
    else:
        centre = np.stack([zeros, zeros, stations], axis=1)
        across = np.stack([zeros + 1.0, zeros, zeros], axis=1)
    flat = np.array([0.0, 1.0, 0.0])
    corners = ((1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0))
    rings = [centre + a * half_w[:, None] * across + b * half_t[:, None] * flat for a, b in corners]
    p.loft(np.stack(rings, axis=1))


def _guard(
    p: _Parts, rng: np.random.Generator, style: str, width: float, height: float,
    blade_w: float, blade_t: float,
) -> None:
    u = rng.uniform
    depth = max(blade_t * u(2.0, 3.5), 0.018)
    z = -height / 2
    if style == "bar":
        p.box((width, depth, height), (0, 0, z))
    elif style == "cross":
        p.box((blade_w * 1.3, depth, height * 1.4), (0, 0, z))
        p.rod((-width / 2, 0, z), (width / 2, 0, z), height / 2)
        for side in (-1, 1):
            p.ball((side * width / 2, 0, z), height * u(0.6, 1.0), detail=1)
    elif style == "swept":
        lift = np.tan(np.radians(u(15, 35))) * width / 2 * rng.choice([-1, 1])
        p.box((blade_w * 1.3, depth, height * 1.4), (0, 0, z))
        for side in (-1, 1):
            end = (side * width / 2, 0, z + lift)
            p.rod((0, 0, z), end, height / 2)
            p.ball(end, height * 0.7, detail=1)
    elif style == "disc":
        radius = u(0.032, 0.05)
        p.disc((0, 0, z), radius * u(1.0, 1.25), radius, height, sections=20)
    else:  # cup: a bowl opening towards the blade, a thin bar through it
        r, wall = u(0.045, 0.065), 0.004
        rim = r * 0.6
        bowl = [(0, 0), (rim, 0.004), (r, rim), (r - wall, rim), (rim - wall, 0.004 + wall), (0, wall)]
        p.lathe(bowl, (0, 0, -height))
        p.rod((-width / 2, 0, z), (width / 2, 0, z), 0.005)


def _pommel(p: _Parts, rng: np.random.Generator, z: float, grip_r: float) -> None:
    r = grip_r * rng.uniform(1.5, 2.3)
    style = str(rng.choice(["sphere", "wheel", "pear", "ring", "cap"]))
    if style == "sphere":
        p.ball((0, 0, z - r * 0.8), r)
    elif style == "wheel":
        p.rod((0, -r * 0.35, z - r), (0, r * 0.35, z - r), r, sections=20)
    elif style == "pear":
        p.ball((0, 0, z - r * 1.2), r, stretch=(0.9, 0.9, 1.5))
    elif style == "ring":
        p.rod((0, 0, z + 0.01), (0, 0, z - r * 0.4), grip_r * 0.6)
        p.torus((0, 0, z - r * 1.1), r * 0.8, r * 0.2, normal=(0, 1, 0))
    else:
        p.cone((0, 0, z + 0.005), (0, 0, z - r * 1.6), r)


# ------------------------------------------------------------------------------------------- planes

_PLANE_KINDS = {
    # kind: fuselage length, radius/length, span/length, root chord/length, taper, sweep deg, dihedral deg
    "airliner": ((30, 60), (0.045, 0.06), (0.9, 1.1), (0.14, 0.2), (0.25, 0.4), (25, 35), (4, 7)),
    "fighter": ((14, 20), (0.05, 0.07), (0.55, 0.8), (0.3, 0.45), (0.1, 0.3), (35, 55), (-4, 0)),
    "light": ((7, 10), (0.06, 0.08), (1.1, 1.4), (0.15, 0.2), (0.6, 1.0), (0, 5), (1, 5)),
    "glider": ((7, 9), (0.035, 0.05), (1.8, 2.3), (0.08, 0.1), (0.3, 0.5), (0, 3), (2, 5)),
    "bomber": ((25, 45), (0.05, 0.065), (0.9, 1.3), (0.15, 0.2), (0.3, 0.5), (0, 35), (0, 4)),
}


def _surface(
    p: _Parts, root_le: _Vec, root_chord: float, tip_le: _Vec, tip_chord: float, thickness: float, up: _Vec
) -> None:
    """A wing, fin or stabiliser: hull of lens-shaped root and tip sections, chord along -X."""
    fractions = np.array([0.0, 0.08, 0.3, 0.65, 1.0])
    half = np.array([0.0, 0.6, 1.0, 0.6, 0.08]) * thickness / 2
    back, normal = np.array([-1.0, 0.0, 0.0]), np.asarray(up, dtype=float)
    points = []
    for edge, chord in ((root_le, root_chord), (tip_le, tip_chord)):
        le = np.asarray(edge, dtype=float)
        for f, h in zip(fractions, half * chord / root_chord):
            points += [le + back * chord * f + normal * h, le + back * chord * f - normal * h]
    p.hull(points)


def _plane(p: _Parts, rng: np.random.Generator) -> None:
    """Nose along +X, wings along Y, centred on the middle of the fuselage."""
    u = rng.uniform
    kind = str(rng.choice(list(_PLANE_KINDS)))
    length_r, radius_r, span_r, chord_r, taper_r, sweep_r, dihedral_r = _PLANE_KINDS[kind]
    length = u(*length_r)
    radius, span, root_chord = length * u(*radius_r), length * u(*span_r), length * u(*chord_r)
    tip_chord = root_chord * u(*taper_r)
    sweep, dihedral = np.radians(u(*sweep_r)), np.radians(u(*dihedral_r))
    nose = radius * (u(4.0, 6.0) if kind == "fighter" else u(1.5, 3.0))
    tail, tail_r, upsweep = radius * u(3.0, 6.0), radius * u(0.2, 0.4), radius * u(0.2, 0.6)
    outline = [
        (0, 0), (tail_r, 0), (radius, tail), (radius, length - nose),
        (radius * 0.8, length - nose * 0.5), (radius * 0.4, length - nose * 0.12), (0, length),
    ]
    body = trimesh.creation.revolve(np.asarray(outline, dtype=float), sections=20)
    body.apply_transform(_translate((-length / 2, 0, 0)) @ _rotate(np.pi / 2, (0, 1, 0)))
    v = np.array(body.vertices)
    tail_start = -length / 2 + tail
    behind = v[:, 0] < tail_start
    v[behind, 2] += upsweep * ((tail_start - v[behind, 0]) / tail) ** 1.5  # tail cone rises to the fin
    body.vertices = v
    p.add(_outward(body))

    mounts = {"airliner": [-0.55], "fighter": [0.0], "bomber": [0.0, 0.6]}.get(kind, [-0.55, 0.7])
    root_le = np.array([length / 2 - length * u(0.35, 0.5), 0.0, float(rng.choice(mounts)) * radius])

    def wing_point(y: float) -> np.ndarray:
        return root_le + np.array([-abs(y) * np.tan(sweep), y, abs(y) * np.tan(dihedral)])

    thickness = root_chord * u(0.08, 0.14)
    for side in (-1, 1):
        _surface(p, root_le, root_chord, wing_point(side * span / 2), tip_chord, thickness, (0, 0, 1))
    _tail(p, rng, kind, length, radius, span, root_chord, upsweep + tail_r * 0.3)
    _engines(p, rng, kind, length, radius, span, wing_point)


def _tail(
    p: _Parts, rng: np.random.Generator, kind: str, length: float, radius: float, span: float,
    root_chord: float, z0: float,
) -> None:
    """Empennage at the raised tail cone: conventional, T-tail, twin fins or V-tail."""
    u = rng.uniform
    styles = ["conventional", "twin"] if kind == "fighter" else ["conventional", "t_tail", "twin", "v_tail"]
    style = str(rng.choice(styles))
    end = -length / 2 + length * 0.02
    fin_h, fin_chord, fin_sweep = length * u(0.11, 0.17), length * u(0.1, 0.16), np.radians(u(25, 50))
    stab_span, stab_chord = max(span * u(0.25, 0.38), 4 * radius), root_chord * u(0.45, 0.7)
    thin = 0.1
    if style == "v_tail":
        root = np.array([end + stab_chord * 1.2, 0.0, z0])
        cant = np.radians(u(30, 45))
        for side in (-1, 1):
            tip = root + fin_h * 1.2 * np.array([-np.tan(fin_sweep), side * np.sin(cant), np.cos(cant)])
            up = (0.0, np.cos(cant), -side * np.sin(cant))
            _surface(p, root, stab_chord * 1.2, tip, stab_chord * 0.6, stab_chord * thin, up)
        return
    fin_root = np.array([end + fin_chord, 0.0, z0])
    fin_tip = fin_root + np.array([-fin_h * np.tan(fin_sweep), 0.0, fin_h])
    fin_tip_chord = fin_chord * (u(0.6, 0.85) if style == "t_tail" else u(0.35, 0.7))
    if style == "t_tail":
        stab_chord = min(stab_chord, fin_tip_chord * 1.2)
        stab_root = fin_tip + np.array([0.0, 0.0, -0.02 * fin_h])
    else:
        stab_root = np.array([end + stab_chord, 0.0, z0])
    for side in (-1, 1):
        stab_tip = stab_root + np.array([-stab_span / 2 * np.tan(np.radians(20)), side * stab_span / 2, 0.0])
        _surface(p, stab_root, stab_chord, stab_tip, stab_chord * 0.55, stab_chord * thin, (0, 0, 1))
        if style == "twin":
            low = stab_tip + np.array([stab_chord * 0.2, 0.0, -fin_h * 0.25])
            high = low + np.array([-fin_h * 0.3, 0.0, fin_h * 0.8])
            _surface(p, low, fin_chord * 0.7, high, fin_chord * 0.45, fin_chord * thin, (0, 1, 0))
    if style != "twin":
        _surface(p, fin_root, fin_chord, fin_tip, fin_tip_chord, fin_chord * thin, (0, 1, 0))


def _propeller(p: _Parts, rng: np.random.Generator, hub: np.ndarray, radius: float, blades: int) -> None:
    """Spinner cone pointing +X and pitched blades around it."""
    p.cone(hub, hub + np.array([radius * 0.35, 0, 0]), radius * 0.12)
    turn = rng.uniform(0, np.pi)
    for k in range(blades):
        spin = _rotate(turn + 2 * np.pi * k / blades, (1, 0, 0), hub)
        pitch = _rotate(np.radians(20), (0, 0, 1))
        blade = trimesh.creation.box(extents=(radius * 0.03, radius * 0.14, radius))
        p.add(blade, spin @ _translate(hub + [0, 0, radius / 2]) @ pitch)


def _engines(
    p: _Parts, rng: np.random.Generator, kind: str, length: float, radius: float, span: float,
    wing_point: Callable[[float], np.ndarray],
) -> None:
    u = rng.uniform
    if kind == "glider":
        return
    if kind == "light":
        _propeller(p, rng, np.array([length / 2, 0.0, 0.0]), radius * u(2.2, 3.0), int(rng.choice([2, 3])))
        return
    if kind == "fighter":
        twin = rng.random() < 0.5
        nozzle_r = radius * (0.42 if twin else 0.6)
        for y in ([-radius * 0.45, radius * 0.45] if twin else [0.0]):
            p.rod((-length / 2 - radius * 0.3, y, 0), (-length / 2 + radius, y, 0), nozzle_r)
        intake_x = length * u(0.0, 0.08)
        for side in (-1, 1):
            p.box((length * 0.25, radius * 0.5, radius * 0.9), (intake_x, side * radius * 0.95, -radius / 10))
        return
    count = int(rng.choice([2, 4])) if kind == "airliner" else int(rng.choice([4, 6]))
    nacelle_r = radius * (u(0.3, 0.45) if count == 2 else u(0.2, 0.3))
    nacelle_len = length * u(0.08, 0.12)
    half = np.array([nacelle_len / 2, 0.0, 0.0])
    if kind == "airliner" and count == 2 and rng.random() < 0.3:  # engines on the rear fuselage
        for side in (-1, 1):
            c = np.array([-length / 2 + length * 0.22, side * (radius + nacelle_r * 1.4), radius * 0.35])
            p.rod(c + half, c - half, nacelle_r, sections=16)
            p.box((nacelle_len * 0.5, nacelle_r * 1.6, nacelle_r * 0.3), c - [0, side * nacelle_r * 0.9, 0])
        return
    props = kind == "bomber" and rng.random() < 0.5
    for side in (-1, 1):
        for f in np.linspace(0.28, 0.7, count // 2):
            c = wing_point(side * f * span / 2) + np.array([nacelle_len * 0.35, 0.0, -nacelle_r * 1.4])
            p.rod(c + half, c - half, nacelle_r, sections=16)
            pylon = c + [-nacelle_len * 0.1, 0, nacelle_r * 0.9]
            p.box((nacelle_len * 0.6, nacelle_r * 0.3, nacelle_r * 1.4), pylon)
            if props:
                _propeller(p, rng, c + half, nacelle_r * u(3.0, 4.0), 3)


# ------------------------------------------------------------------------------------------- chairs


def _chair(p: _Parts, rng: np.random.Generator) -> None:
    """Seat centred over the origin, front towards +Y, back at -Y, standing on z = 0."""
    u = rng.uniform
    width, depth, seat_h, seat_t = u(0.42, 0.6), u(0.4, 0.55), u(0.4, 0.5), u(0.03, 0.07)
    legs = str(rng.choice(["square", "round", "tapered", "splayed", "pedestal", "sled"]))
    under = seat_h - seat_t
    if legs in ("round", "pedestal") and rng.random() < 0.35:
        depth = width
        p.disc((0, 0, under + seat_t / 2), width / 2, width / 2, seat_t)
    else:
        p.box((width, depth, seat_t), (0, 0, under + seat_t / 2))
    _chair_legs(p, rng, legs, width, depth, under)
    back = _Parts()
    styles = ["solid", "cushion"] if legs == "pedestal" else ["solid", "slats", "rails", "frame"]
    _chair_back(back, rng, str(rng.choice(styles)), width, depth, seat_h, u(0.25, 0.65))
    p.extend(back, _rotate(np.radians(u(0, 15)), (1, 0, 0), (0, -depth / 2, seat_h)))
    if rng.random() < (0.6 if legs == "pedestal" else 0.3):
        arm_h, arm_w = u(0.18, 0.26), u(0.04, 0.07)
        for side in (-1, 1):
            x = side * (width / 2 + arm_w * 0.3)
            p.box((arm_w, depth * u(0.75, 1.0), 0.03), (x, 0, seat_h + arm_h))
            p.box((0.03, 0.03, arm_h), (x, depth * 0.3, seat_h + arm_h / 2))


def _chair_legs(
    p: _Parts, rng: np.random.Generator, style: str, width: float, depth: float, top: float
) -> None:
    u = rng.uniform
    leg = u(0.028, 0.05)
    inset = u(0.0, 0.04) + leg / 2
    hx, hy = width / 2 - inset, depth / 2 - inset
    if style == "pedestal":
        base_r = u(0.26, 0.34)
        p.rod((0, 0, 0.06), (0, 0, top), u(0.022, 0.035))
        arms = int(rng.choice([4, 5]))
        for a in 2 * np.pi * np.arange(arms) / arms:
            end = np.array([np.cos(a) * base_r, np.sin(a) * base_r, 0.05])
            p.rod((0, 0, 0.08), end, 0.018, sections=8)
            p.ball(end - [0, 0, 0.025], 0.025, detail=1)
        return
    if style == "sled":
        bar = u(0.012, 0.022)
        for x in (-hx, hx):
            p.rod((x, -hy - 0.03, bar), (x, hy + 0.03, bar), bar)
            p.rod((x, hy, bar), (x, hy, top), bar)
            p.rod((x, -hy, bar), (x, -hy, top), bar)
        return
    splay = u(0.03, 0.08)
    for x, y in [(sx * hx, sy * hy) for sx in (-1, 1) for sy in (-1, 1)]:
        if style == "square":
            p.box((leg, leg, top), (x, y, top / 2))
        elif style == "round":
            p.rod((x, y, 0), (x, y, top), leg / 2)
        elif style == "tapered":
            p.frustum((x, y, 0), (x, y, top), leg / 2 * u(0.45, 0.7), leg / 2)
        else:
            p.rod((x, y, top), (x + np.sign(x) * splay, y + np.sign(y) * splay, 0), leg / 2)
    if style != "splayed" and rng.random() < 0.5:
        z, r = top * u(0.2, 0.35), leg * 0.25
        for x in (-hx, hx):
            p.rod((x, -hy, z), (x, hy, z), r, sections=8)
        p.rod((-hx, 0, z), (hx, 0, z), r, sections=8)


def _chair_back(
    p: _Parts, rng: np.random.Generator, style: str, width: float, depth: float, seat_h: float, height: float
) -> None:
    """Back parts before tilting, standing on the seat's rear edge."""
    u = rng.uniform
    y, thick, top = -depth / 2 + 0.02, u(0.02, 0.05), seat_h + height
    if style == "solid":
        p.box((width * u(0.85, 1.0), thick, height), (0, y, seat_h + height / 2))
        return
    if style == "cushion":
        p.rod((0, y - 0.02, seat_h - 0.02), (0, y - 0.02, seat_h + height * 0.3), 0.02)
        p.ball((0, y, seat_h + height * 0.62), 1.0, stretch=(width * 0.45, thick, height * 0.4))
        return
    post, rail = u(0.025, 0.04), u(0.04, 0.09)
    for side in (-1, 1):
        p.box((post, post, height), (side * (width / 2 - post / 2), y, seat_h + height / 2))
    p.box((width, thick, rail), (0, y, top - rail / 2))
    inner = width - 2 * post
    if style == "slats":
        count = int(rng.integers(2, 7))
        slat = min(u(0.015, 0.04), inner / (2 * count))
        for x in np.linspace(-inner / 2, inner / 2, count + 2)[1:-1]:
            p.box((slat, thick * 0.7, height - rail), (x, y, seat_h + (height - rail) / 2))
    elif style == "rails":
        for z in np.linspace(seat_h, top - rail, int(rng.integers(2, 5)) + 2)[1:-1]:
            p.box((inner, thick * 0.7, rail * 0.6), (0, y, z))
    else:
        panel = (inner * u(0.4, 0.8), thick * 0.7, (height - rail) * u(0.5, 0.8))
        p.box(panel, (0, y, seat_h + (height - rail) / 2))


# ------------------------------------------------------------------------------------------- tables

_TABLE_KINDS = {
    # kind: height, top length, top depth, top shapes, supports
    "dining": ((0.72, 0.78), (1.2, 2.2), (0.75, 1.0), ("rect", "oval", "round"),
               ("legs", "legs", "pedestal", "trestle")),
    "coffee": ((0.38, 0.48), (0.9, 1.3), (0.5, 0.7), ("rect", "oval", "round"),
               ("legs", "pedestal", "panels")),
    "bar": ((0.95, 1.08), (0.6, 0.9), (0.6, 0.9), ("round", "rect"), ("pedestal", "legs", "tripod")),
    "desk": ((0.72, 0.76), (1.1, 1.6), (0.6, 0.8), ("rect",), ("legs", "panels")),
    "side": ((0.5, 0.65), (0.4, 0.6), (0.4, 0.6), ("rect", "round"), ("legs", "pedestal", "tripod")),
}


def _table(p: _Parts, rng: np.random.Generator) -> None:
    """Top centred over the origin, standing on z = 0."""
    u = rng.uniform
    kind = str(rng.choice(list(_TABLE_KINDS)))
    height_r, length_r, depth_r, tops, supports = _TABLE_KINDS[kind]
    height, length, depth = u(*height_r), u(*length_r), u(*depth_r)
    shape, support = str(rng.choice(tops)), str(rng.choice(supports))
    if support in ("trestle", "panels"):
        shape = "rect"
    if support == "tripod":
        shape = "round"
    if shape == "round":
        length = depth = max(length, depth) if kind in ("bar", "side") else depth * u(1.1, 1.4)
    top_t = u(0.02, 0.06)
    under = height - top_t
    if shape == "rect":
        p.box((length, depth, top_t), (0, 0, under + top_t / 2))
    else:
        p.disc((0, 0, under + top_t / 2), length / 2, depth / 2, top_t, sections=32)
    # Supports stay inside the top: 0.7 of the half-axes lies inside an ellipse.
    hx, hy = (length / 2, depth / 2) if shape == "rect" else (length * 0.35, depth * 0.35)
    if support == "legs":
        _table_legs(p, rng, hx, hy, under, apron=shape == "rect")
    elif support == "pedestal":
        _table_pedestal(p, rng, min(hx, hy), under)
    elif support == "tripod":
        leg_r = u(0.012, 0.02)
        for a in 2 * np.pi * np.arange(3) / 3 + np.pi / 2:
            c, s = np.cos(a), np.sin(a)
            p.rod((c * 0.05, s * 0.05, under), (c * hx * 1.1, s * hy * 1.1, 0), leg_r)
    elif support == "trestle":
        for side in (-1, 1):
            x = side * hx * u(0.7, 0.85)
            p.box((0.06, depth * 0.7, 0.05), (x, 0, 0.025))
            p.box((0.05, 0.08, under), (x, 0, under / 2))
            p.box((0.06, depth * 0.6, 0.04), (x, 0, under - 0.02))
        p.box((hx * 1.6, 0.05, 0.06), (0, 0, under * u(0.25, 0.5)))
    else:
        panel = u(0.02, 0.04)
        for side in (-1, 1):
            p.box((panel, depth * u(0.85, 1.0), under), (side * (hx - panel / 2 - 0.01), 0, under / 2))
        if rng.random() < 0.6:
            p.box((hx * 2 - 0.04, 0.02, under * u(0.3, 0.6)), (0, -hy + 0.05, under * 0.7))
        if kind == "desk" and rng.random() < 0.5:
            p.box((length * 0.3, depth * 0.9, under * 0.7), (hx * 0.6, 0, under * 0.65))


def _table_pedestal(p: _Parts, rng: np.random.Generator, reach: float, top: float) -> None:
    u = rng.uniform
    column_r = u(0.04, 0.09)
    p.rod((0, 0, 0), (0, 0, top), column_r, sections=16)
    foot = reach * u(0.6, 1.0)
    if rng.random() < 0.5:
        p.disc((0, 0, 0.015), foot, foot, 0.03)
    else:
        bars = int(rng.choice([2, 3]))
        for a in np.pi * np.arange(bars) / bars + rng.uniform(0, np.pi):
            p.box((2 * foot, 0.06, 0.04), (0, 0, 0.02), rotation=_rotate(a, (0, 0, 1)))
    if rng.random() < 0.5:
        p.disc((0, 0, top - 0.015), column_r * 2.5, column_r * 2.5, 0.03, sections=16)


def _table_legs(p: _Parts, rng: np.random.Generator, hx: float, hy: float, top: float, apron: bool) -> None:
    u = rng.uniform
    leg = u(0.035, 0.08)
    inset = u(0.02, 0.1) + leg / 2
    x0, y0 = hx - inset, hy - inset
    style = str(rng.choice(["square", "round", "tapered", "splayed"]))
    splay = u(0.04, 0.1)
    for x, y in [(sx * x0, sy * y0) for sx in (-1, 1) for sy in (-1, 1)]:
        if style == "square":
            p.box((leg, leg, top), (x, y, top / 2))
        elif style == "round":
            p.rod((x, y, 0), (x, y, top), leg / 2)
        elif style == "tapered":
            p.frustum((x, y, 0), (x, y, top), leg * 0.25, leg / 2)
        else:
            p.rod((x, y, top), (x + np.sign(x) * splay, y + np.sign(y) * splay, 0), leg / 2)
    if apron and rng.random() < 0.6:
        h = u(0.06, 0.12)
        for sign in (-1, 1):
            p.box((2 * x0, 0.02, h), (0, sign * y0, top - h / 2))
            p.box((0.02, 2 * y0, h), (sign * x0, 0, top - h / 2))
    if rng.random() < 0.3:
        p.box((2 * x0, 2 * y0, 0.02), (0, 0, top * u(0.15, 0.3)))


# --------------------------------------------------------------------------------------------- mugs


def _mug(p: _Parts, rng: np.random.Generator) -> None:
    """Hollow cup opening upwards, standing on z = 0, handle towards +X."""
    u = rng.uniform
    height, radius, wall, floor = u(0.075, 0.13), u(0.03, 0.05), u(0.003, 0.007), u(0.006, 0.012)
    shape = str(rng.choice(["straight", "flared", "narrowing", "barrel", "footed"]))
    k = u(0.08, 0.25)
    foot = u(0.006, 0.012) if shape == "footed" else 0.0

    def outer(z: np.ndarray | float) -> np.ndarray:
        h = (np.asarray(z, dtype=float) - foot) / (height - foot)
        factor = {"flared": 1 + k * h, "narrowing": 1 - k * h, "barrel": 1 + k * np.sin(np.pi * h)}
        return radius * factor.get(shape, np.ones_like(h))

    zs = np.linspace(foot, height, 7)
    inner_zs = np.linspace(height, floor + foot, 7)
    profile = [(0.0, 0.0)]
    if foot:
        profile += [(radius * 0.8, 0.0), (radius * 0.8, foot)]
    profile += list(zip(outer(zs), zs)) + list(zip(outer(inner_zs) - wall, inner_zs)) + [(0.0, floor + foot)]
    p.lathe(profile)
    if rng.random() < 0.3:
        p.torus((0, 0, height), float(outer(height)) - wall / 2, wall * 0.8)
    _mug_handle(p, rng, outer, wall, foot, height)


def _mug_handle(
    p: _Parts, rng: np.random.Generator, outer: Callable[[float], np.ndarray],
    wall: float, foot: float, height: float,
) -> None:
    """A bent tube leaving the wall horizontally at both ends, so it never pokes into the cup."""
    u = rng.uniform
    span = (height - foot) * u(0.45, 0.7)
    mid = foot + (height - foot) * u(0.45, 0.55)
    z_top, z_bottom = mid + span / 2, mid - span / 2
    style = str(rng.choice(["loop", "ear", "square"]))
    reach = span / 2 * {"loop": u(0.8, 1.1), "ear": u(0.35, 0.55), "square": u(0.6, 0.9)}[style]
    power = 2.0 / (5.0 if style == "square" else 2.0)
    stub = u(0.003, 0.008)
    t = np.linspace(np.pi / 2, -np.pi / 2, 21)
    x = stub + (reach - stub) * np.abs(np.cos(t)) ** power
    z = span / 2 * np.sign(np.sin(t)) * np.abs(np.sin(t)) ** power
    path = np.concatenate([[[-wall / 2, span / 2]], np.stack([x, z], axis=1), [[-wall / 2, -span / 2]]])
    local = np.stack([path[:, 0], np.zeros(len(path)), path[:, 1]], axis=1)
    slope = np.arctan2(float(outer(z_top) - outer(z_bottom)), span)  # follow a tapered wall
    anchor = ((float(outer(z_top)) + float(outer(z_bottom))) / 2, 0.0, mid)
    placed = trimesh.transform_points(local, _translate(anchor) @ _rotate(slope, (0, 1, 0)))
    p.tube(placed, u(0.004, 0.007))


# -------------------------------------------------------------------------------------------- lamps


def _lamp(p: _Parts, rng: np.random.Generator) -> None:
    """Standing on z = 0: articulated desk lamp, floor lamp, table lamp or arc lamp."""
    {"desk": _desk_lamp, "floor": _floor_lamp, "table": _table_lamp, "arc": _arc_lamp}[
        str(rng.choice(["desk", "floor", "table", "arc"]))
    ](p, rng)


def _shade(p: _Parts, rng: np.random.Generator, top: _Vec, direction: _Vec, scale: float) -> None:
    """A hollow lamp shade hanging from `top`, opening along `direction`, with a bulb inside."""
    u = rng.uniform
    style = str(rng.choice(["cone", "dome", "drum"]))
    r_open, depth, t = scale * u(0.8, 1.2), scale * u(0.9, 1.6), scale * 0.06
    if style == "cone":
        r_top = r_open * u(0.2, 0.45)
        outline = [(0, depth - t), (r_top - t, depth - t), (r_open - t, 0), (r_open, 0), (r_top, depth),
                   (0, depth)]
    elif style == "dome":
        a = np.linspace(0.0, np.pi / 2, 7)
        outside = np.stack([r_open * np.cos(a), depth * np.sin(a)], axis=1)
        inside = np.stack([(r_open - t) * np.cos(a[::-1]), (depth - t) * np.sin(a[::-1])], axis=1)
        outline = [(0, depth - t), *map(tuple, inside[1:]), *map(tuple, outside[:-1]), (0, depth)]
    else:
        outline = [(0, depth - t), (r_open - t, depth - t), (r_open - t, 0), (r_open, 0), (r_open, depth),
                   (0, depth)]
    d = np.asarray(direction, dtype=float) / np.linalg.norm(direction)
    opening = np.asarray(top, dtype=float) + d * depth
    p.lathe(outline, opening, -d)
    p.ball(opening - d * depth * 0.45, r_open * 0.3, detail=1)


def _ring_shade(p: _Parts, rng: np.random.Generator, bottom: float, pole_top: float, scale: float) -> None:
    """An open drum or empire shade around the pole tip, held by three thin spokes."""
    u = rng.uniform
    r_bottom, h, t = scale * u(0.9, 1.1), scale * u(0.9, 1.5), scale * 0.03
    r_top = r_bottom * float(rng.choice([1.0, u(0.55, 0.8), u(1.15, 1.4)]))
    p.lathe([(r_bottom - t, 0), (r_bottom, 0), (r_top, h), (r_top - t, h)], (0, 0, bottom))
    for a in 2 * np.pi * np.arange(3) / 3:
        rim = (np.cos(a) * (r_top - t), np.sin(a) * (r_top - t), bottom + h - t)
        p.rod((0, 0, pole_top), rim, t * 0.15, sections=6)
    p.ball((0, 0, pole_top - scale * 0.1), scale * 0.2, detail=1)


def _round_or_square_base(p: _Parts, rng: np.random.Generator, size: float, thickness: float) -> None:
    if rng.random() < 0.65:
        p.disc((0, 0, thickness / 2), size, size, thickness)
    else:
        p.box((2 * size, 2 * size * rng.uniform(0.7, 1.0), thickness), (0, 0, thickness / 2))


def _desk_lamp(p: _Parts, rng: np.random.Generator) -> None:
    u = rng.uniform
    base_t = u(0.02, 0.035)
    _round_or_square_base(p, rng, u(0.07, 0.1), base_t)
    pivot = np.array([0.0, 0.0, base_t + 0.02])
    rise = np.radians(u(55, 85))
    elbow = pivot + u(0.28, 0.42) * np.array([-np.cos(rise), 0.0, np.sin(rise)])
    reach = np.radians(u(-25, 25))
    head = elbow + u(0.28, 0.4) * np.array([np.cos(reach), 0.0, np.sin(reach)])
    twin = rng.random() < 0.5
    for start, end in ((pivot, elbow), (elbow, head)):
        if twin:
            for y in (-0.012, 0.012):
                p.rod(start + [0, y, 0], end + [0, y, 0], 0.005, sections=8)
        else:
            p.rod(start, end, u(0.007, 0.011), sections=10)
    for joint in (pivot, elbow, head):
        p.ball(joint, 0.017, detail=1)
    aim = np.radians(u(10, 50))
    direction = np.array([np.sin(aim), 0.0, -np.cos(aim)])
    _shade(p, rng, head, direction, u(0.05, 0.075))


def _floor_lamp(p: _Parts, rng: np.random.Generator) -> None:
    u = rng.uniform
    height, pole_r = u(1.3, 1.75), u(0.01, 0.018)
    if rng.random() < 0.3:
        spread = u(0.22, 0.32)
        for a in 2 * np.pi * np.arange(3) / 3:
            p.rod((0, 0, 0.45), (np.cos(a) * spread, np.sin(a) * spread, 0), pole_r * 0.9, sections=8)
    else:
        _round_or_square_base(p, rng, u(0.13, 0.2), u(0.02, 0.04))
    p.rod((0, 0, 0), (0, 0, height), pole_r)
    scale = u(0.15, 0.24)
    if rng.random() < 0.3:
        p.ball((0, 0, height + scale * 0.8), scale)
    else:
        _ring_shade(p, rng, height - scale * 0.6, height, scale)


def _table_lamp(p: _Parts, rng: np.random.Generator) -> None:
    u = rng.uniform
    body_h, body_r = u(0.15, 0.3), u(0.05, 0.1)
    style = str(rng.choice(["vase", "column", "globe"]))
    if style == "globe":
        p.ball((0, 0, body_h / 2), 1.0, stretch=(body_r, body_r, body_h / 2))
    else:
        zs = np.linspace(0, body_h, 7)
        h = zs / body_h
        bulge = 0.6 + 0.6 * np.sin(np.pi * h) ** 1.5 - 0.2 * h
        radii = body_r * (bulge if style == "vase" else np.ones_like(h))
        p.lathe([(0.0, 0.0)] + list(zip(radii, zs)) + [(0.0, body_h)])
    neck = u(0.08, 0.16)
    p.rod((0, 0, body_h - 0.01), (0, 0, body_h + neck), 0.008, sections=8)
    scale = max(u(0.12, 0.19), body_r * 1.3)
    _ring_shade(p, rng, body_h + neck * 0.4, body_h + neck, scale)


def _arc_lamp(p: _Parts, rng: np.random.Generator) -> None:
    u = rng.uniform
    base_t = u(0.04, 0.06)
    _round_or_square_base(p, rng, u(0.15, 0.22), base_t)
    z0, reach, rise, pole_r = u(0.9, 1.3), u(0.7, 1.2), u(0.4, 0.8), u(0.01, 0.016)
    end_angle = u(0.2, 0.6)
    t = np.linspace(np.pi, np.pi / 2 - end_angle, 24)
    arc = np.stack([reach + reach * np.cos(t), np.zeros_like(t), z0 + rise * np.sin(t)], axis=1)
    p.rod((0, 0, 0), (0, 0, z0 + 0.01), pole_r)
    p.tube(arc, pole_r)
    drop = arc[-1] - np.array([0.0, 0.0, u(0.05, 0.15)])
    p.rod(arc[-1], drop, pole_r * 0.5, sections=8)
    _shade(p, rng, drop, (0, 0, -1), u(0.13, 0.2))


_BUILDERS: dict[str, Callable[[_Parts, np.random.Generator], None]] = {
    "sword": _sword,
    "plane": _plane,
    "chair": _chair,
    "table": _table,
    "mug": _mug,
    "lamp": _lamp,
}
