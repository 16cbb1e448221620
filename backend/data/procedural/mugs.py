"""Mugs: solids of revolution with a handle."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import trimesh

from .parts import Parts, rotate, translate


def build(p: Parts, rng: np.random.Generator) -> None:
    """Hollow cup opening upwards, standing on z = 0, handle towards +X."""
    u = rng.uniform
    height, radius, wall, floor = u(0.075, 0.13), u(0.03, 0.05), u(0.003, 0.007), u(0.006, 0.012)
    shape = str(rng.choice(["straight", "flared", "narrowing", "barrel", "footed"]))
    k = u(0.08, 0.25)
    foot = u(0.006, 0.012) if shape == "footed" else 0.0

    def outer(z: np.ndarray | float) -> np.ndarray:
        h = (np.asarray(z, dtype=float) - foot) / (height - foot)
        factor = {"flared": 1 + k * h, "narrowing": 1 - k * h, "barrel": 1 + k * np.sin(np.pi * h)}
        radii: np.ndarray = radius * factor.get(shape, np.ones_like(h))  # numpy's stubs: Any
        return radii

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
    p: Parts, rng: np.random.Generator, outer: Callable[[float], np.ndarray],
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
    placed = trimesh.transform_points(local, translate(anchor) @ rotate(slope, (0, 1, 0)))
    p.tube(placed, u(0.004, 0.007))
