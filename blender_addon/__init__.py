"""AtlasVAE Blender add-on: generate, reconstruct, interpolate and fine-tune 3-D shapes with an
AtlasNet VAE that runs in a separate backend process (Blender's Python never imports torch).

Only register()/unregister() import the bpy-using modules, so the bpy-free parts (client, wire,
locate) import anywhere, e.g. in plain pytest or in build_addon.py.
"""

from __future__ import annotations

from types import ModuleType


def _modules() -> list[ModuleType]:
    from . import operators, panels, preferences, properties

    return [preferences, properties, operators, panels]


def register() -> None:
    """Register preferences, properties, operators and panels; start the backend if asked to."""
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
