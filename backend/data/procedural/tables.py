"""Tables: rectangular, round and pedestal tables, with or without aprons."""

from __future__ import annotations

import numpy as np

from .parts import Parts, rotate


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


def build(p: Parts, rng: np.random.Generator) -> None:
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


def _table_pedestal(p: Parts, rng: np.random.Generator, reach: float, top: float) -> None:
    u = rng.uniform
    column_r = u(0.04, 0.09)
    p.rod((0, 0, 0), (0, 0, top), column_r, sections=16)
    foot = reach * u(0.6, 1.0)
    if rng.random() < 0.5:
        p.disc((0, 0, 0.015), foot, foot, 0.03)
    else:
        bars = int(rng.choice([2, 3]))
        for a in np.pi * np.arange(bars) / bars + rng.uniform(0, np.pi):
            p.box((2 * foot, 0.06, 0.04), (0, 0, 0.02), rotation=rotate(a, (0, 0, 1)))
    if rng.random() < 0.5:
        p.disc((0, 0, top - 0.015), column_r * 2.5, column_r * 2.5, 0.03, sections=16)


def _table_legs(p: Parts, rng: np.random.Generator, hx: float, hy: float, top: float, apron: bool) -> None:
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
