"""Where results go (blender_addon/bpyfree/layout.py), in plain pytest: shapes stand on their base, grids
and rows leave room for the widest shape, a result lands clear beside its source, and a new batch moves
along +X past earlier results by whole steps."""

from __future__ import annotations

import numpy as np

from blender_addon.bpyfree.layout import (
    MIN_GAP, beside, box_of, free_shift, gap, grid_pitch, standing, translation,
)


def cube(size: float, at: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """The 8 corners of an axis-aligned cube of edge `size` with its minimum corner at `at`."""
    corners: np.ndarray = np.array([[x, y, z] for x in (0.0, size) for y in (0.0, size) for z in (0.0, size)])
    corners += np.array(at)
    return corners


def test_translation_moves_a_point_by_the_offset() -> None:
    m = translation(np.array([1.0, -2.0, 3.0]))
    assert np.allclose(m @ np.array([1.0, 1.0, 1.0, 1.0]), [2.0, -1.0, 4.0, 1.0])


def test_standing_puts_the_base_at_the_bottom_centre() -> None:
    local, base = standing(cube(2.0, at=(4.0, 6.0, 1.0)))
    assert np.allclose(base, [5.0, 7.0, 1.0])
    lo, hi = box_of(local)
    assert np.allclose(lo, [-1.0, -1.0, 0.0]) and np.allclose(hi, [1.0, 1.0, 2.0])


def test_gap_is_a_width_and_a_fifth_and_never_zero() -> None:
    assert np.isclose(gap(cube(5.0)), 6.0)
    assert gap(np.zeros((4, 3))) == MIN_GAP


def test_grid_pitch_makes_room_for_the_widest_footprint() -> None:
    assert grid_pitch([cube(1.0), cube(2.0)], spacing=3.0) == 3.0
    assert np.isclose(grid_pitch([cube(1.0), cube(10.0)], spacing=3.0), 11.0)
    assert grid_pitch([], spacing=3.0) == 3.0


def test_beside_clears_the_source_even_when_the_result_reaches_further() -> None:
    source = cube(2.0)
    assert np.isclose(beside(source, source), gap(source))
    wider = cube(6.0, at=(-2.0, 0.0, 0.0))
    shift = beside(source, wider)
    assert box_of(wider)[0][0] + shift > box_of(source)[1][0]


def test_free_shift_steps_past_obstacles_and_stays_put_when_clear() -> None:
    boxes = [box_of(cube(1.0))]
    assert np.array_equal(free_shift(boxes, [], step=2.0), [0.0, 0.0, 0.0])
    obstacles = [box_of(cube(1.0)), box_of(cube(1.0, at=(2.0, 0.0, 0.0)))]
    shift = free_shift(boxes, obstacles, step=2.0)
    assert np.array_equal(shift, [4.0, 0.0, 0.0])
    assert np.array_equal(free_shift(boxes, obstacles, step=2.0, margin=1.5), [6.0, 0.0, 0.0])
