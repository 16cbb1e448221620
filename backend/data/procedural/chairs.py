"""Chairs: seats on four legs, sledges or a pedestal, with slatted, solid or no backs."""

from __future__ import annotations

import numpy as np

from .parts import Parts, rotate


def build(p: Parts, rng: np.random.Generator) -> None:
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
    back = Parts()
    styles = ["solid", "cushion"] if legs == "pedestal" else ["solid", "slats", "rails", "frame"]
    _chair_back(back, rng, str(rng.choice(styles)), width, depth, seat_h, u(0.25, 0.65))
    p.extend(back, rotate(np.radians(u(0, 15)), (1, 0, 0), (0, -depth / 2, seat_h)))
    if rng.random() < (0.6 if legs == "pedestal" else 0.3):
        arm_h, arm_w = u(0.18, 0.26), u(0.04, 0.07)
        for side in (-1, 1):
            x = side * (width / 2 + arm_w * 0.3)
            p.box((arm_w, depth * u(0.75, 1.0), 0.03), (x, 0, seat_h + arm_h))
            p.box((0.03, 0.03, arm_h), (x, depth * 0.3, seat_h + arm_h / 2))


def _chair_legs(
    p: Parts, rng: np.random.Generator, style: str, width: float, depth: float, top: float
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
    p: Parts, rng: np.random.Generator, style: str, width: float, depth: float, seat_h: float, height: float
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
