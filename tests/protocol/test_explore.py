"""The Shape Explorer over a real `python -m backend serve`: `directions`, `explore`, and the latent, scale,
offset and label every result carries so that it can be decoded again in place."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from backend.limits import MAX_AMOUNT, MAX_MOVES
from backend.serving.protocol import INVALID_PARAMS

from .harness import RawServer
from .test_methods import CUBE_FACES, CUBE_VERTS

LATENT = 6  # the cube-of-patches model's latent size


def b64(values: Any) -> str:
    return base64.b64encode(np.asarray(values, dtype="<f4").tobytes()).decode("ascii")


def vertices(mesh: dict[str, Any]) -> np.ndarray:
    return np.frombuffer(base64.b64decode(mesh["vertices"]), dtype="<f4").reshape(-1, 3)


def ok(server: RawServer, method: str, params: dict[str, Any]) -> dict[str, Any]:
    reply = server.request(method, params)
    assert "result" in reply, reply
    result: dict[str, Any] = reply["result"]
    return result


@pytest.fixture(scope="module")
def cube_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cube-of-patches model with a VAE prior of 40 codes, a 'box' family of 20 (its own directions), a
    'few' family of 8 (too few: the model-wide ones), and typical sizes, so samples come out sized."""
    from backend.checkpoints import save_model
    from backend.prior import posterior_mixture
    from tests.addon.make_tiny_model import cube_patches_model

    rng = np.random.default_rng(0)
    codes = rng.normal(0, 0.3, (40, LATENT)) * np.array([1.0, 0.8, 0.6, 0.4, 0.3, 0.2])
    logvar = np.full((40, LATENT), -8.0)
    folder = tmp_path_factory.mktemp("explore_models") / "cube"
    save_model(folder, cube_patches_model(), prior=posterior_mixture(codes, logvar),
               meta={"name": "cube", "sizes": {"overall": [1.0, 2.0, 3.0], "labels": {"box": [0.5, 0.5, 0.5]}}},
               label_priors={"box": posterior_mixture(codes[:20], logvar[:20]),
                             "few": posterior_mixture(codes[20:28], logvar[:8])})
    return folder


@pytest.fixture(scope="module")
def server(cube_folder: Path) -> Iterator[RawServer]:
    """A real server with the cube model loaded."""
    raw = RawServer("--model", str(cube_folder))
    yield raw
    raw.close()


def test_directions_are_listed_per_family(server: RawServer) -> None:
    overall = ok(server, "directions", {})
    assert overall["label"] is None and overall["families"] == ["box"] and overall["max_amount"] == MAX_AMOUNT
    assert [d["index"] for d in overall["directions"]] == list(range(LATENT))
    sigmas = [d["sigma"] for d in overall["directions"]]
    assert sigmas == sorted(sigmas, reverse=True) and sigmas[-1] > 0
    assert all(0 < len(d["description"]) <= 16 for d in overall["directions"])
    assert ok(server, "directions", {"label": "box"})["label"] == "box"
    assert ok(server, "directions", {"label": "few"}) == overall


def test_every_result_says_where_it_came_from(server: RawServer) -> None:
    cube = {"vertices": b64(CUBE_VERTS), "faces": base64.b64encode(np.asarray(CUBE_FACES, "<i4").tobytes()).decode(),
            "vertex_count": len(CUBE_VERTS), "face_count": len(CUBE_FACES)}
    results = [*ok(server, "sample", {"count": 2, "surface": "patches", "resolution": 200})["meshes"],
               ok(server, "reconstruct", {"mesh": cube, "surface": "patches", "resolution": 200})["mesh"],
               *ok(server, "interpolate", {"mesh_a": cube, "mesh_b": cube, "steps": 2, "surface": "patches",
                                           "resolution": 200})["meshes"],
               *ok(server, "variations", {"mesh": cube, "count": 2, "surface": "patches",
                                          "resolution": 200})["meshes"]]
    for mesh in results:
        assert len(base64.b64decode(mesh["latent"])) == 4 * LATENT
        assert mesh["scale"] > 0 and len(mesh["offset"]) == 3 and mesh["label"] is None
    labelled = ok(server, "sample", {"count": 1, "label": "box", "surface": "patches", "resolution": 200})
    assert labelled["meshes"][0]["label"] == "box"


@pytest.mark.parametrize("sample", [{"size": "real"}, {"size": "unit"}, {"size": "real", "label": "box"}])
def test_a_results_latent_decodes_again_to_the_same_mesh(server: RawServer, sample: dict[str, Any]) -> None:
    (mesh,) = ok(server, "sample", {"count": 1, "seed": 5, "surface": "patches", "resolution": 400,
                                    **sample})["meshes"]
    again = ok(server, "explore", {"latent": mesh["latent"], "scale": mesh["scale"], "offset": mesh["offset"],
                                   "label": mesh["label"], "surface": "patches", "resolution": 400,
                                   "moves": [{"direction": 0, "amount": 0.0}]})["mesh"]
    np.testing.assert_allclose(vertices(again), vertices(mesh), atol=1e-6)
    assert again["latent"] == mesh["latent"] and again["label"] == mesh["label"]
    if sample["size"] == "unit":
        assert mesh["scale"] == 1.0 and mesh["offset"] == [0.0, 0.0, 0.0]


def test_explore_moves_the_shape_along_a_direction(server: RawServer) -> None:
    (mesh,) = ok(server, "sample", {"count": 1, "size": "unit", "surface": "patches", "resolution": 400})["meshes"]
    start = vertices(mesh)
    listed = ok(server, "directions", {})["directions"]
    sigma = listed[0]["sigma"]

    def explore(**params: Any) -> dict[str, Any]:
        mesh_out: dict[str, Any] = ok(server, "explore", {"latent": mesh["latent"], "surface": "patches",
                                                          "resolution": 400, **params})["mesh"]
        return mesh_out

    moved = explore(moves=[{"direction": 0, "amount": 2.0}])
    assert np.abs(vertices(moved) - start).max() > 0.05
    step = np.frombuffer(base64.b64decode(moved["latent"]), "<f4") - np.frombuffer(base64.b64decode(mesh["latent"]),
                                                                                   "<f4")
    assert np.linalg.norm(step) == pytest.approx(2.0 * sigma, rel=1e-4)  # amounts are in sigmas
    back = explore(moves=[{"direction": 0, "amount": 2.0}, {"direction": 0, "amount": -2.0}])
    np.testing.assert_allclose(vertices(back), start, atol=1e-5)
    placed = explore(moves=[{"direction": 0, "amount": 2.0}], scale=2.0, offset=[1.0, -1.0, 0.5])
    np.testing.assert_allclose(vertices(placed), vertices(moved) * 2.0 + [1.0, -1.0, 0.5], atol=1e-5)
    assert placed["scale"] == 2.0 and placed["offset"] == [1.0, -1.0, 0.5]
    other = ok(server, "sample", {"count": 1, "seed": 9, "size": "unit", "surface": "patches",
                                  "resolution": 400})["meshes"][0]
    np.testing.assert_allclose(vertices(explore(toward=other["latent"], blend=1.0)), vertices(other), atol=1e-5)
    halfway = vertices(explore(toward=other["latent"], blend=0.5))
    assert 0 < np.abs(halfway - start).max() < np.abs(vertices(other) - start).max()
    closed = explore(moves=[{"direction": 1, "amount": -1.0}], surface="closed", face_budget=2000)
    assert closed["surface"] == "closed" and 0 < closed["face_count"] <= 2000


GOOD = b64(np.zeros(LATENT))


@pytest.mark.parametrize("params,named", [
    ({}, "latent"),
    ({"latent": "not base64!"}, "latent"),
    ({"latent": b64(np.zeros(LATENT - 1))}, "latent"),
    ({"latent": b64([0, 0, np.nan, 0, 0, 0])}, "latent"),
    ({"latent": b64([0, 0, 0, np.inf, 0, 0])}, "latent"),
    ({"latent": base64.b64encode(b"abc").decode()}, "latent"),
    ({"latent": GOOD, "toward": b64(np.zeros(LATENT + 2))}, "toward"),
    ({"latent": GOOD, "moves": [{"direction": 0, "amount": MAX_AMOUNT + 0.5}]}, "moves[0].amount"),
    ({"latent": GOOD, "moves": [{"direction": 0, "amount": float("-inf")}]}, None),
    ({"latent": GOOD, "moves": [{"direction": 0}]}, "moves[0].amount"),
    ({"latent": GOOD, "moves": [{"direction": 0, "amount": 1.0, "speed": 2}]}, "moves[0].speed"),
    ({"latent": GOOD, "moves": [{"direction": 6, "amount": 1.0}]}, "moves[0].direction"),
    ({"latent": GOOD, "moves": [{"direction": -1, "amount": 1.0}]}, "moves[0].direction"),
    ({"latent": GOOD, "moves": [{"direction": 0, "amount": 1.0}, {"direction": "0", "amount": 1.0}]},
     "moves[1].direction"),
    ({"latent": GOOD, "moves": {"direction": 0, "amount": 1.0}}, "moves"),
    ({"latent": GOOD, "moves": [{"direction": 0, "amount": 0.01}] * (MAX_MOVES + 1)}, "moves"),
    ({"latent": GOOD, "label": "dragon"}, "label"),
    ({"latent": GOOD, "blend": 1.5}, "blend"),
    ({"latent": GOOD, "scale": 0.0}, "scale"),
    ({"latent": GOOD, "offset": [0, 0]}, "offset"),
    ({"latent": GOOD, "offset": [0, 0, "up"]}, "offset[2]"),
    ({"latent": GOOD, "resolution": 1}, "resolution"),
])
def test_bad_input_is_a_clear_error_and_the_server_keeps_serving(server: RawServer, params: dict[str, Any],
                                                                 named: str | None) -> None:
    if named is None:  # not JSON: -Infinity is refused when the line is parsed
        server.send(b'{"jsonrpc": "2.0", "id": 7, "method": "explore", "params": {"latent": "' + GOOD.encode() +
                    b'", "moves": [{"direction": 0, "amount": -Infinity}]}}')
        error = server.reply_to(7)["error"]
        assert error["code"] < 0 and "Infinity" in error["message"]
    else:
        error = server.request("explore", params)["error"]
        assert error["code"] == INVALID_PARAMS and f"'{named}'" in error["message"], error
    mesh = ok(server, "explore", {"latent": GOOD, "surface": "patches", "resolution": 200})["mesh"]
    assert mesh["vertex_count"] == 200


def test_a_label_the_model_does_not_know_is_refused_by_directions(server: RawServer) -> None:
    error = server.request("directions", {"label": "dragon"})["error"]
    assert error["code"] == INVALID_PARAMS and "'label'" in error["message"] and "box" in error["message"]


def test_directions_are_written_beside_the_model(server: RawServer) -> None:
    from backend.directions import DIRECTIONS_FILE

    ok(server, "directions", {})
    folder = Path(ok(server, "handshake", {})["model"]["path"])
    assert (folder / DIRECTIONS_FILE).is_file()


def test_explore_checks_its_params_and_finds_its_direction_set_once(cube_folder: Path) -> None:
    import os

    from backend.serving.dispatcher import Server
    from backend.serving.service import ModelService

    service = ModelService("cpu")
    read_fd, write_fd = os.pipe()
    try:
        server = Server(service, write_fd)
        server._model_info = service.load(str(cube_folder))
        calls: list[str | None] = []
        find = service.direction_set
        service.direction_set = lambda label=None: (calls.append(label), find(label))[1]  # type: ignore[method-assign]
        params = {"latent": np.zeros(LATENT, np.float32), "moves": [{"direction": 0, "amount": 1.0}], "label": "box",
                  "toward": None, "blend": 0.0, "scale": 1.0, "offset": [0.0, 0.0, 0.0], "resolution": 642,
                  "surface": "patches", "face_budget": 20000}
        assert "mesh" in server._explore(params)
        assert calls == ["box"], "one look-up of the direction set per request"
    finally:
        os.close(read_fd)
        os.close(write_fd)
