"""Swords: long, broad, short and sabre blades with guards, grips and pommels."""

from __future__ import annotations

import numpy as np

from .parts import Parts


_GUARD_WIDTHS = {"long": (0.2, 0.3), "broad": (0.18, 0.28), "short": (0.08, 0.14), "sabre": (0.08, 0.14)}


def build(p: Parts, rng: np.random.Generator) -> None:
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
    p: Parts, rng: np.random.Generator, style: str, length: float, width: float, thick: float
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
    p: Parts, rng: np.random.Generator, style: str, width: float, height: float,
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


def _pommel(p: Parts, rng: np.random.Generator, z: float, grip_r: float) -> None:
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
