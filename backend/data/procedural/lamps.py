"""Lamps: desk, floor, table and arc lamps with shades."""

from __future__ import annotations

import numpy as np

from .parts import Parts, Vec


def build(p: Parts, rng: np.random.Generator) -> None:
    """Standing on z = 0: articulated desk lamp, floor lamp, table lamp or arc lamp."""
    {"desk": _desk_lamp, "floor": _floor_lamp, "table": _table_lamp, "arc": _arc_lamp}[
        str(rng.choice(["desk", "floor", "table", "arc"]))
    ](p, rng)


def _shade(p: Parts, rng: np.random.Generator, top: Vec, direction: Vec, scale: float) -> None:
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


def _ring_shade(p: Parts, rng: np.random.Generator, bottom: float, pole_top: float, scale: float) -> None:
    """An open drum or empire shade around the pole tip, held by three thin spokes."""
    u = rng.uniform
    r_bottom, h, t = scale * u(0.9, 1.1), scale * u(0.9, 1.5), scale * 0.03
    r_top = r_bottom * float(rng.choice([1.0, u(0.55, 0.8), u(1.15, 1.4)]))
    p.lathe([(r_bottom - t, 0), (r_bottom, 0), (r_top, h), (r_top - t, h)], (0, 0, bottom))
    for a in 2 * np.pi * np.arange(3) / 3:
        rim = (np.cos(a) * (r_top - t), np.sin(a) * (r_top - t), bottom + h - t)
        p.rod((0, 0, pole_top), rim, t * 0.15, sections=6)
    p.ball((0, 0, pole_top - scale * 0.1), scale * 0.2, detail=1)


def _round_or_square_base(p: Parts, rng: np.random.Generator, size: float, thickness: float) -> None:
    if rng.random() < 0.65:
        p.disc((0, 0, thickness / 2), size, size, thickness)
    else:
        p.box((2 * size, 2 * size * rng.uniform(0.7, 1.0), thickness), (0, 0, thickness / 2))


def _desk_lamp(p: Parts, rng: np.random.Generator) -> None:
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


def _floor_lamp(p: Parts, rng: np.random.Generator) -> None:
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


def _table_lamp(p: Parts, rng: np.random.Generator) -> None:
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


def _arc_lamp(p: Parts, rng: np.random.Generator) -> None:
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
