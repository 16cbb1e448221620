"""Fixtures for add-on tests in real bpy (headless): a tiny model folder, the add-on enabled through
addon_utils (so its preferences exist), a clean scene per test, and the backend it starts.

Blender's user folders point into a temporary directory before bpy is first imported, so the tests
never read or write the real user configuration. bpy is imported lazily: the bpy-free tests
(locate, build) do not pay for it.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
ADDON_MODULE = "blender_addon"
_USER_ROOT = Path(tempfile.mkdtemp(prefix="atlasvae-blender-user-"))
atexit.register(shutil.rmtree, _USER_ROOT, True)
for _var, _sub in (("BLENDER_USER_CONFIG", "config"), ("BLENDER_USER_SCRIPTS", "scripts"),
                   ("BLENDER_USER_EXTENSIONS", "extensions"), ("BLENDER_USER_DATAFILES", "datafiles")):
    os.environ[_var] = str(_USER_ROOT / _sub)


def backend_python() -> str:
    """The interpreter with torch that runs the backend in tests ($ATLASVAE_PYTHON, else the repo venv)."""
    explicit = os.environ.get("ATLASVAE_PYTHON")
    if explicit:
        return explicit
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.is_file() else sys.executable


def make_tiny_model(folder: Path, name: str, *more: str) -> Path:
    """Write the identity-sphere test model (see make_tiny_model.py; `more`: its LABELS, TEMPLATE and PRIOR
    arguments) with the backend's Python."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([backend_python(), str(HERE / "make_tiny_model.py"), str(folder), name, *more],
                          capture_output=True, text=True, env=env, cwd=str(REPO))
    assert proc.returncode == 0, f"could not build the tiny model:\n{proc.stderr}"
    return folder


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A models folder with one tiny model, exported as ATLASVAE_MODELS_DIR for the add-on; the
    backends it starts inherit ATLASVAE_PYTHON and a private ATLASVAE_CACHE (no ~/.cache writes)."""
    root = tmp_path_factory.mktemp("models")
    make_tiny_model(root / "tiny", "tiny")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ATLASVAE_MODELS_DIR", str(root))
        patch.setenv("ATLASVAE_PYTHON", backend_python())
        patch.setenv("ATLASVAE_CACHE", str(tmp_path_factory.mktemp("point-cache")))
        yield root


@pytest.fixture(scope="session")
def user_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The add-on's user folder (fine-tuned models, logs) for this test session."""
    return tmp_path_factory.mktemp("atlasvae-user")


@pytest.fixture(scope="session")
def bpy_module() -> Any:
    """Real Blender as a Python module (imported once per process)."""
    return pytest.importorskip("bpy")


@pytest.fixture(scope="session")
def addon(bpy_module: Any, models_dir: Path, user_dir: Path) -> Iterator[Any]:
    """The add-on enabled like Blender does (addon_utils), preferences set for the tests."""
    import addon_utils

    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    module = addon_utils.enable(ADDON_MODULE, default_set=True)
    assert module is not None, "addon_utils.enable returned None (see the traceback above)"
    prefs = bpy_module.context.preferences.addons[ADDON_MODULE].preferences
    prefs.user_dir = str(user_dir)
    prefs.device = "cpu"
    from blender_addon import properties

    properties.refresh_models()
    yield module
    addon_utils.disable(ADDON_MODULE, default_set=True)


@pytest.fixture()
def scene(addon: Any, bpy_module: Any, models_dir: Path) -> Iterator[Any]:
    """A scene emptied of objects and collections, with the tiny model chosen and fast settings."""
    bpy = bpy_module
    clear_scene(bpy)
    scene = bpy.context.scene
    settings = scene.atlasvae
    settings.model = "bundled/tiny"
    settings.resolution_preset = "642"
    settings.random_seed = False
    scene.cursor.location = (0.0, 0.0, 0.0)
    yield scene
    clear_scene(bpy)


def clear_scene(bpy: Any) -> None:
    """Remove every object, collection and mesh so each test starts from nothing."""
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj)
    for collection in list(bpy.data.collections):
        bpy.data.collections.remove(collection)
    for mesh in list(bpy.data.meshes):
        bpy.data.meshes.remove(mesh)
    bpy.context.view_layer.update()


def add_mesh_object(bpy: Any, name: str, kind: str = "uv_sphere", location: tuple[float, float, float] = (0, 0, 0),
                    rotation: tuple[float, float, float] = (0, 0, 0),
                    scale: tuple[float, float, float] = (1, 1, 1)) -> Any:
    """Add a primitive mesh object with a transform, select it alone and make it active."""
    ops = {"uv_sphere": bpy.ops.mesh.primitive_uv_sphere_add, "cube": bpy.ops.mesh.primitive_cube_add,
           "monkey": bpy.ops.mesh.primitive_monkey_add, "cone": bpy.ops.mesh.primitive_cone_add}
    ops[kind](location=location, rotation=rotation)
    obj = bpy.context.active_object
    obj.name = name
    obj.scale = scale  # on the object: the operator's own scale argument is baked into the mesh
    bpy.context.view_layer.update()
    return obj


def made(bpy: Any) -> list[Any]:
    """Every object the add-on made (it tags them with atlasvae_model), by name."""
    return sorted((o for o in bpy.data.objects if "atlasvae_model" in o), key=lambda o: o.name)


def select_only(bpy: Any, objects: list[Any], active: Any | None = None) -> None:
    """Select exactly `objects` and make `active` (default: the last one) the active object."""
    for obj in bpy.context.view_layer.objects:
        obj.select_set(False)
    for obj in objects:
        obj.select_set(True)
    view_layer = bpy.context.view_layer
    view_layer.objects.active = active if active is not None else (objects[-1] if objects else None)


class WindowedApp:
    """Stands in for bpy.app as Blender reports it with a window open (not background); everything
    else is the real bpy.app. Background bpy never fires timers, so tests call jobs.tick() themselves."""

    background = False

    def __init__(self, real: Any) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@pytest.fixture()
def interactive(scene: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The add-on as in a Blender window (only bpy.app.background stood in): operators return at once
    and the dispatch timer applies results. Yields `jobs`; drains and unregisters the timer afterwards."""
    import bpy

    from blender_addon import jobs

    monkeypatch.setattr(bpy, "app", WindowedApp(bpy.app))
    assert not jobs.blocking_default()
    yield jobs
    while jobs.pending_kinds():
        time.sleep(0.01)
        jobs.tick()
    if bpy.app.timers.is_registered(jobs.tick):
        bpy.app.timers.unregister(jobs.tick)


BOX_FACES = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                      [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]])


def box(size: tuple[float, float, float]) -> np.ndarray:
    """The eight corners of a box of `size` centred on the origin (faces: BOX_FACES)."""
    corners = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], dtype=float)
    return (corners - 0.5) * np.array(size)


def write_obj(path: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    """A minimal OBJ of vertices and triangles."""
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture()
def mesh_folder(tmp_path: Path) -> Path:
    """Ten OBJ boxes of different proportions, to fine-tune on."""
    folder = tmp_path / "meshes"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(10):
        write_obj(folder / f"box_{i}.obj", box(tuple(rng.uniform(0.3, 2.0, size=3))), BOX_FACES)
    return folder
