"""AtlasVAE operators, one module per job: sample, from_selection (reconstruct, interpolate, variations),
finetune, backend_control (start/stop/release/load/cancel/open log) and building (turning results into
objects in the scene); common holds what they share."""

from __future__ import annotations

import bpy

from .. import jobs
from . import backend_control, finetune, from_selection, sample
from .backend_control import start_on_load

CLASSES = (*sample.CLASSES, *from_selection.CLASSES, *finetune.CLASSES, *backend_control.CLASSES)

__all__ = ["CLASSES", "register", "start_on_load", "unregister"]


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    jobs.set_handlers(finetune.on_notification, finetune.job_watch)


def unregister() -> None:
    jobs.set_handlers(None, None)
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
