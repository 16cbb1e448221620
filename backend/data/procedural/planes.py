"""Planes: airliners, fighters, gliders and propeller aircraft with wings, tails and engines."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import trimesh

from .parts import Parts, Vec, outward, rotate, translate


_PLANE_KINDS = {
    # kind: fuselage length, radius/length, span/length, root chord/length, taper, sweep deg, dihedral deg
    "airliner": ((30, 60), (0.045, 0.06), (0.9, 1.1), (0.14, 0.2), (0.25, 0.4), (25, 35), (4, 7)),
    "fighter": ((14, 20), (0.05, 0.07), (0.55, 0.8), (0.3, 0.45), (0.1, 0.3), (35, 55), (-4, 0)),
    "light": ((7, 10), (0.06, 0.08), (1.1, 1.4), (0.15, 0.2), (0.6, 1.0), (0, 5), (1, 5)),
    "glider": ((7, 9), (0.035, 0.05), (1.8, 2.3), (0.08, 0.1), (0.3, 0.5), (0, 3), (2, 5)),
    "bomber": ((25, 45), (0.05, 0.065), (0.9, 1.3), (0.15, 0.2), (0.3, 0.5), (0, 35), (0, 4)),
}


def _surface(
    p: Parts, root_le: Vec, root_chord: float, tip_le: Vec, tip_chord: float, thickness: float, up: Vec
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


def build(p: Parts, rng: np.random.Generator) -> None:
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
    body.apply_transform(translate((-length / 2, 0, 0)) @ rotate(np.pi / 2, (0, 1, 0)))
    v = np.array(body.vertices)
    tail_start = -length / 2 + tail
    behind = v[:, 0] < tail_start
    v[behind, 2] += upsweep * ((tail_start - v[behind, 0]) / tail) ** 1.5  # tail cone rises to the fin
    body.vertices = v
    p.add(outward(body))

    mounts = {"airliner": [-0.55], "fighter": [0.0], "bomber": [0.0, 0.6]}.get(kind, [-0.55, 0.7])
    root_le = np.array([length / 2 - length * u(0.35, 0.5), 0.0, float(rng.choice(mounts)) * radius])

    def wing_point(y: float) -> np.ndarray:
        # numpy's stubs type this sum as Any
        point: np.ndarray = root_le + np.array([-abs(y) * np.tan(sweep), y, abs(y) * np.tan(dihedral)])
        return point

    thickness = root_chord * u(0.08, 0.14)
    for side in (-1, 1):
        _surface(p, root_le, root_chord, wing_point(side * span / 2), tip_chord, thickness, (0, 0, 1))
    _tail(p, rng, kind, length, radius, span, root_chord, upsweep + tail_r * 0.3)
    _engines(p, rng, kind, length, radius, span, wing_point)


def _tail(
    p: Parts, rng: np.random.Generator, kind: str, length: float, radius: float, span: float,
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


def _propeller(p: Parts, rng: np.random.Generator, hub: np.ndarray, radius: float, blades: int) -> None:
    """Spinner cone pointing +X and pitched blades around it."""
    p.cone(hub, hub + np.array([radius * 0.35, 0, 0]), radius * 0.12)
    turn = rng.uniform(0, np.pi)
    for k in range(blades):
        spin = rotate(turn + 2 * np.pi * k / blades, (1, 0, 0), hub)
        pitch = rotate(np.radians(20), (0, 0, 1))
        blade = trimesh.creation.box(extents=(radius * 0.03, radius * 0.14, radius))
        p.add(blade, spin @ translate(hub + [0, 0, radius / 2]) @ pitch)


def _engines(
    p: Parts, rng: np.random.Generator, kind: str, length: float, radius: float, span: float,
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
