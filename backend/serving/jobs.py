"""A job the client can follow and cancel by its id: a fine-tune, or a request-time fit."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Job:
    """A fine-tune run on its own thread, or a request-time fit on the model thread (`kind` "fit");
    `state` is running, done, failed or cancelled."""

    id: str
    kind: str = "finetune"
    cancel: threading.Event = field(default_factory=threading.Event)
    state: str = "running"
    last_event: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    thread: threading.Thread | None = None
    last_step_sent: float = float("-inf")

    def status(self) -> dict[str, Any]:
        """The `job_status` reply: id, state and last progress event, with the result or error once there."""
        out: dict[str, Any] = {"job_id": self.id, "state": self.state, "last_event": self.last_event}
        if self.result is not None:
            out["result"] = self.result
        if self.error is not None:
            out["error"] = self.error
        return out
