"""AtlasVAE Blender add-on: generate, reconstruct, interpolate and fine-tune 3-D shapes with an
AtlasNet VAE that runs in a separate backend process (Blender's Python never imports torch).

Only register()/unregister() import the bpy-using modules, so the bpy-free half (the bpyfree package:
client, wire, locate) imports anywhere, e.g. in plain pytest or in build_addon.py.
"""

from __future__ import annotations

from types import ModuleType

NUMPY_MISSING = ("AtlasVAE needs numpy in Blender's own Python, and this Blender has none. Blender's official "
                 "builds (blender.org, Steam, the Microsoft Store) include it; some Linux distributions' Blender "
                 "packages do not: install numpy for that Python (Debian/Ubuntu: apt-get install python3-numpy) "
                 "or use an official build.")


def require_numpy() -> None:
    """Refuse to enable with a message saying what to do, not a bare "No module named 'numpy'"."""
    try:
        import numpy  # noqa: F401
    except ImportError:
        raise ImportError(NUMPY_MISSING) from None


def _modules() -> list[ModuleType]:
    from . import explore, keymaps, menus, operators, panels, preferences, properties, runtime

    return [runtime, preferences, properties, operators, panels, explore, menus, keymaps]


def register() -> None:
    """Register runtime state, preferences, properties, operators, panels and menus; start the backend
    if asked to."""
    require_numpy()
    for module in _modules():
        module.register()
    from .operators import start_on_load

    start_on_load()


def unregister() -> None:
    """Stop the backend and timers, then unregister everything in reverse order."""
    from . import jobs

    jobs.shutdown()
    for module in reversed(_modules()):
        module.unregister()
