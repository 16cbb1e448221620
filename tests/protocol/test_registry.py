"""The method registry and the option declarations: one declaration each, and every layer built from it.

The wire checks each request once against backend/options.py (the service trusts what reaches it), the CLI's
arguments carry the same bounds and their declared defaults, and docs/architecture.md's tables are the
registry's own (scripts/wire_tables.py)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from backend import options
from backend.data.meshio import Mesh
from backend.cli import build_parser
from backend.serving.dispatcher import Server
from backend.serving.methods import METHODS, nested_params, wire
from backend.serving.protocol import INVALID_PARAMS, RpcError, encode_mesh, validate_params

REPO = Path(__file__).resolve().parents[2]
DECLARED = [value for value in vars(options).values() if isinstance(value, options.Option)]


def test_every_handler_is_registered_once_and_model_methods_are_marked() -> None:
    handlers = {name for name in vars(Server) if name.startswith("_") and callable(vars(Server)[name])}
    assert {m.handler.__name__ for m in METHODS.values()} <= handlers
    assert {name for name, m in METHODS.items() if m.model} == {
        "load_model", "sample", "reconstruct", "interpolate", "variations", "directions", "explore", "release"}


def test_every_declared_option_is_taken_by_a_method_as_declared() -> None:
    taken = [o for m in METHODS.values() for o in m.options]
    assert all(any(o is t for t in taken) for o in DECLARED), [o.name for o in DECLARED if o not in taken]
    for method in METHODS.values():
        for option in method.options:
            assert wire(option) in nested_params(method.params)


def test_the_docs_tables_are_the_registrys() -> None:
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "wire_tables.py"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("method,params,name", [
    ("sample", dict(count=0), "count"),
    ("sample", dict(count=5000), "count"),
    ("sample", dict(count=True), "count"),
    ("sample", dict(count=2.0), "count"),
    ("sample", dict(seed=-1), "seed"),
    ("sample", dict(seed="7"), "seed"),
    ("sample", dict(temperature=-0.5), "temperature"),
    ("sample", dict(temperature=10.5), "temperature"),
    ("sample", dict(temperature="hot"), "temperature"),
    ("sample", dict(resolution=5), "resolution"),
    ("sample", dict(resolution=10**9), "resolution"),
    ("sample", dict(size="huge"), "size"),
    ("sample", dict(face_budget=0), "face_budget"),
    ("interpolate", dict(steps=1), "steps"),
    ("variations", dict(count=0), "count"),
    ("variations", dict(spread=-1.0), "spread"),
    ("variations", dict(fit="full"), "fit"),
    ("reconstruct", dict(resolution=0), "resolution"),
    ("reconstruct", dict(steps=0), "steps"),
    ("finetune", dict(epochs=0, data="d", out="o"), "epochs"),
])
def test_bad_params_are_refused_at_the_wire_naming_them(method: str, params: dict[str, Any], name: str) -> None:
    tetra = encode_mesh(Mesh(np.eye(4, 3), np.array([[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]])))
    meshes = {"mesh": tetra, "mesh_a": tetra, "mesh_b": tetra}
    given = {**{p.name: meshes[p.name] for p in METHODS[method].params if p.name in meshes}, **params}
    with pytest.raises(RpcError) as caught:
        validate_params(given, METHODS[method].params, method)
    assert caught.value.code == INVALID_PARAMS and f"'{name}'" in caught.value.message


def _cli_actions(command: str) -> dict[str, argparse.Action]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {a.dest: a for a in sub.choices[command]._actions}


CLI = [("sample", "n", options.COUNT), ("sample", "seed", options.SEED), ("sample", "temperature", options.TEMPERATURE),
       ("sample", "resolution", options.RESOLUTION), ("sample", "prior", options.PRIOR),
       ("sample", "label", options.LABEL), ("sample", "size", options.SIZE), ("sample", "surface", options.SURFACE),
       ("sample", "face_budget", options.FACE_BUDGET), ("reconstruct", "fit", options.FIT),
       ("reconstruct", "steps", options.FIT_STEPS), ("interpolate", "steps", options.STEPS),
       ("interpolate", "fit", options.SHARED_FIT), ("interpolate", "fit_steps", options.SHARED_FIT_STEPS),
       ("finetune", "epochs", options.EPOCHS), ("explore", "amount", options.AMOUNT)]


def test_every_option_the_cli_offers_is_checked_here() -> None:
    listed = {id(option) for _c, _d, option in CLI}
    assert [o.name for o in DECLARED if o.cli is not options.ABSENT and id(o) not in listed] == []


@pytest.mark.parametrize("command,dest,option", CLI, ids=[f"{c}-{d}" for c, d, _ in CLI])
def test_cli_arguments_are_the_declared_options(command: str, dest: str, option: options.Option) -> None:
    action = _cli_actions(command)[dest]
    assert action.default == option.cli_default
    if option.choices is not None:
        assert tuple(action.choices or ()) == option.choices
    elif option.minimum is not None and command != "finetune":  # train/finetune bounds: TrainConfig.check
        parse = action.type
        assert callable(parse)
        assert parse(str(option.maximum)) == option.maximum and parse(str(option.minimum)) == option.minimum
        for bad in (option.minimum - 1, option.maximum + 1):
            with pytest.raises(argparse.ArgumentTypeError, match=f"must be {option.describe()}"):
                parse(str(bad))
