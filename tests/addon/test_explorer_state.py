"""The Shape Explorer's bpy-free state (blender_addon/bpyfree/explorer.py) in plain pytest: a drag's
requests never queue up behind each other, a release keeps its closed surface and undo step, and a
result's stored properties and a slider position become the `explore` request the contract names."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from blender_addon.bpyfree.explorer import (
    Coalescer, DirectionTable, Position, Shape, amounts_of, decode_latent, encode_latent, explore_params, moves,
    random_amounts, result_props, same_model,
)

TABLE = DirectionTable.from_reply({"label": None, "families": ["chair"], "max_amount": 3.0, "directions": [
    {"index": i, "description": f"dir {i}", "sigma": 0.5 + i} for i in range(6)]})


def test_at_most_one_in_flight_and_the_newest_waiting_replaces_older_ones() -> None:
    c = Coalescer()
    first, now = c.offer({"n": 1})
    assert now and first.params == {"n": 1}
    for n in range(2, 10):  # the mouse moves eight times while the backend works on the first
        assert c.offer({"n": n})[1] is False
    assert c.replaced == 7
    nxt = c.finished(first)
    assert nxt is not None and nxt.params == {"n": 9}, "the newest position, not the second"
    assert c.finished(nxt) is None and c.idle()
    assert c.sent == 2


def test_a_release_replaced_by_a_newer_move_stays_final_with_the_releases_surface() -> None:
    c = Coalescer()
    first, _now = c.offer({"n": 1, "surface": "patches"})
    c.offer({"n": 2, "surface": "closed"}, final=True)  # released, then a new drag starts before the reply
    c.offer({"n": 3, "surface": "patches"})
    nxt = c.finished(first)
    assert nxt is not None and nxt.final
    assert nxt.params == {"n": 3, "surface": "closed"}, "the final request asks for the object's own surface"


def test_finishing_a_request_that_is_not_in_flight_is_refused() -> None:
    c = Coalescer()
    first, _now = c.offer({"n": 1})
    c.finished(first)
    with pytest.raises(ValueError, match="not the one in flight"):
        c.finished(first)


def test_offers_from_one_thread_and_replies_on_another_never_send_two_at_once() -> None:
    """The main thread offers while a reader thread finishes requests, both at once; no two requests are ever
    out together and the last one sent is the newest position."""
    c = Coalescer()
    out: list = []  # requests sent and not yet answered
    lock = threading.Lock()
    most = [0]
    last_sent: list = []
    stop = threading.Event()

    def send(request: object) -> None:
        with lock:
            out.append(request)
            most[0] = max(most[0], len(out))
            last_sent[:] = [request]

    def reader() -> None:  # the backend answers as fast as it can
        while not (stop.is_set() and c.idle()):
            with lock:
                request = out.pop(0) if out else None
            if request is None:
                continue
            nxt = c.finished(request)
            if nxt is not None:
                send(nxt)

    worker = threading.Thread(target=reader)
    worker.start()
    for n in range(2000):
        request, now = c.offer({"n": n})
        if now:
            send(request)
    stop.set()
    worker.join(timeout=60.0)
    assert not worker.is_alive(), "the reader never saw the coalescer idle"
    assert most[0] == 1, "two requests were out at once"
    assert last_sent[0].params == {"n": 1999}, "the newest position was not the last one sent"
    assert c.sent + c.replaced == 2000


def test_latents_round_trip_and_bad_ones_are_named() -> None:
    z = np.arange(6, dtype=np.float32) / 7
    assert np.array_equal(decode_latent(encode_latent(z)), z)
    with pytest.raises(ValueError, match="toward is not valid base64"):
        decode_latent("***", "toward")
    with pytest.raises(ValueError, match="whole number of float32"):
        decode_latent("AAA=", "latent")
    with pytest.raises(ValueError, match="finite"):
        encode_latent([0.0, float("nan")])


def _shape() -> Shape:
    props = result_props({"latent": encode_latent(np.ones(6)), "scale": 2.0, "offset": [1.0, 0.0, 0.5],
                          "label": "chair"}, "/models/m", np.eye(4))
    shape = Shape.from_props({**props, "model": "m", "resolution": 642, "surface": "closed"})
    assert shape is not None
    return shape


def test_stored_properties_make_a_shape_again() -> None:
    shape = _shape()
    assert shape.label == "chair" and shape.scale == 2.0 and shape.offset == (1.0, 0.0, 0.5)
    assert shape.model_path == "/models/m" and shape.resolution == 642 and shape.surface == "closed"
    assert Shape.from_props({"model": "m", "resolution": 642}) is None, "an older result is not explorable"
    assert result_props({"vertices": ""}, "/m", np.eye(4)) == {}


def test_frame_maps_backend_vertices_into_the_objects_coordinates() -> None:
    frame = np.eye(4)
    frame[:3, 3] = [-1.0, 0.0, 2.0]
    props = result_props({"latent": encode_latent(np.ones(6)), "scale": 1.0, "offset": [0, 0, 0]}, None, frame)
    shape = Shape.from_props({**props, "resolution": 642})
    assert shape is not None
    assert np.allclose(shape.to_local(np.array([[1.0, 1.0, 1.0]])), [[0.0, 1.0, 3.0]])


def test_slider_values_become_moves_within_the_bounds() -> None:
    assert moves(TABLE, [0.0, 1.5, -9.0, 0.0, 0.0, 0.0]) == [{"direction": 1, "amount": 1.5},
                                                            {"direction": 2, "amount": -3.0}]
    assert amounts_of([1.0, 2.0], 4) == [1.0, 2.0, 0.0, 0.0]


def test_explore_request_follows_the_contract() -> None:
    shape = _shape()
    params = explore_params(shape, TABLE, [1.0] + [0.0] * 5, "patches", 20000, toward=np.zeros(6), blend=0.25)
    assert params["moves"] == [{"direction": 0, "amount": 1.0}]
    assert params["scale"] == 2.0 and params["offset"] == [1.0, 0.0, 0.5] and params["resolution"] == 642
    assert params["surface"] == "patches" and params["blend"] == 0.25
    assert np.array_equal(decode_latent(params["toward"]), np.zeros(6))
    assert "toward" not in explore_params(shape, TABLE, [0.0] * 6, "closed", 20000, toward=np.zeros(6), blend=0.0)
    with pytest.raises(ValueError, match="different models"):
        explore_params(shape, TABLE, [0.0] * 6, "closed", 20000, toward=np.zeros(4), blend=0.5)


def test_directions_reply_is_read_and_bad_ones_named() -> None:
    assert [d.description for d in TABLE.directions] == [f"dir {i}" for i in range(6)]
    assert TABLE.families == ("chair",) and TABLE.label is None
    with pytest.raises(ValueError, match="'directions' list"):
        DirectionTable.from_reply({"label": None})
    with pytest.raises(ValueError, match="max_amount"):
        DirectionTable.from_reply({"directions": [], "max_amount": -1})


def test_randomise_stays_within_the_bounds() -> None:
    values = random_amounts(TABLE, np.random.default_rng(0), spread=10.0)
    assert len(values) == 6 and all(abs(v) <= 3.0 for v in values) and any(abs(v) == 3.0 for v in values)


def test_a_request_keeps_the_slider_position_it_was_made_from() -> None:
    c = Coalescer()
    request, _now = c.offer({"n": 1}, final=True, position=Position((1.0, 2.0), 0.5, (0.0, 1.0), "Other"))
    assert request.position.amounts == (1.0, 2.0) and request.position.blend == 0.5
    assert request.position.toward == (0.0, 1.0) and request.position.toward_name == "Other"


def test_only_a_result_of_the_same_model_can_be_a_toward_target() -> None:
    from dataclasses import replace

    shape = _shape()
    assert same_model(shape, replace(shape, latent=np.zeros(6, dtype=np.float32)))
    assert not same_model(shape, replace(shape, latent=np.zeros(4, dtype=np.float32))), "another latent size"
    assert not same_model(shape, replace(shape, model_path="/models/other"))
    assert same_model(replace(shape, model_path=""), shape), "no folder recorded: the name decides"
    assert not same_model(replace(shape, model_path=""), replace(shape, model_name="other"))


def test_a_result_stores_the_face_budget_it_was_made_with() -> None:
    props = result_props({"latent": encode_latent(np.ones(6))}, "/models/m", np.eye(4), 5000)
    shape = Shape.from_props({**props, "model": "m", "resolution": 642})
    assert shape is not None and shape.face_budget == 5000
    older = Shape.from_props({**result_props({"latent": encode_latent(np.ones(6))}, None, np.eye(4)),
                              "resolution": 642})
    assert older is not None and older.face_budget is None
