"""The Shape Explorer's bpy-free half: what a result stores to be explored again (Shape), the model's
directions as the backend gives them (DirectionTable), the `explore` request a slider position makes,
and the Coalescer that keeps a drag's requests from queueing up behind each other.

A drag changes a slider many times a second while the backend answers one request at a time. The
Coalescer keeps at most one request in flight and at most one waiting: a newer position replaces the
waiting one, so the backend always works on the newest position the artist has reached and never on a
stale one queued behind it. Nothing here imports bpy or torch: plain pytest drives it
(tests/addon/test_explorer_state.py) and Blender's Python runs it (blender_addon/explore.py).
"""

from __future__ import annotations

import base64
import math
import threading
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from .wire import base64_bytes

MAX_SLIDERS = 8  # one slider per direction: backend/limits.py MAX_DIRECTIONS (tests/addon/test_option_pins.py)
DEFAULT_MAX_AMOUNT = 3.0  # sigmas, until the backend's `directions` reply says otherwise
LIVE_SURFACE = "patches"  # during a drag: the decoded patches, fast enough to follow the mouse
RANDOM_SPREAD = 1.0  # Randomise: each slider a normal draw of this many sigmas (the result as made at 0)


def encode_latent(latent: Any) -> str:
    """A latent code (D values) as the wire carries it: base64 of little-endian float32."""
    z = np.asarray(latent, dtype="<f4")
    if z.ndim != 1 or z.size == 0:
        raise ValueError(f"a latent must be a non-empty list of numbers, got shape {z.shape}")
    if not np.isfinite(z).all():
        raise ValueError("a latent must hold finite numbers only")
    return base64.b64encode(z.tobytes()).decode("ascii")


def decode_latent(text: Any, name: str = "latent") -> np.ndarray:
    """The wire's base64 float32 latent as a (D,) float32 array; ValueError naming `name` when malformed."""
    raw = base64_bytes(text, name)
    if not raw or len(raw) % 4:
        raise ValueError(f"{name} holds {len(raw)} bytes, not a whole number of float32 values")
    return np.frombuffer(raw, dtype="<f4").astype(np.float32)


@dataclass(frozen=True)
class Shape:
    """What an explorable result keeps (as the object's atlasvae_* custom properties, so it survives saving
    and reopening): its latent code, the frame the backend decoded it in (vertices = unit-frame vertices *
    scale + offset), its family label, the model folder and name, the vertex count asked for, which surface
    it ends up as, `frame`: the 4x4 matrix from the backend's frame to the object's own coordinates, and
    the face budget its closed surface was made with (None for a result made before results stored it)."""

    latent: np.ndarray
    scale: float
    offset: tuple[float, float, float]
    label: str | None
    model_path: str
    model_name: str
    resolution: int
    surface: str
    frame: np.ndarray = field(default_factory=lambda: np.eye(4))
    face_budget: int | None = None

    @classmethod
    def from_props(cls, props: Mapping[str, Any]) -> Shape | None:
        """The Shape stored in `props` (an object's custom properties without the "atlasvae_" prefix), or
        None when they do not hold a complete one (an older result, or one applied as plain mesh data)."""
        try:
            latent = np.asarray(list(props["latent"]), dtype=np.float32)
            offset = tuple(float(v) for v in props["offset"])
            frame = np.asarray(list(props.get("frame", np.eye(4).ravel())), dtype=np.float64).reshape(4, 4)
            shape = cls(latent=latent, scale=float(props["scale"]), offset=(offset[0], offset[1], offset[2]),
                        label=str(props["label"]) if props.get("label") else None,
                        model_path=str(props.get("model_path", "")), model_name=str(props.get("model", "")),
                        resolution=int(props["resolution"]), surface=str(props.get("surface", LIVE_SURFACE)),
                        frame=frame,
                        face_budget=int(props["face_budget"]) if "face_budget" in props else None)
        except (KeyError, TypeError, ValueError, IndexError):
            return None
        if latent.ndim != 1 or latent.size == 0 or len(offset) != 3 or not np.isfinite(frame).all():
            return None
        return shape

    def to_local(self, vertices: np.ndarray) -> np.ndarray:
        """Backend-frame vertices (V, 3) in the object's own coordinates."""
        v = np.asarray(vertices, dtype=np.float64)
        local: np.ndarray = v @ self.frame[:3, :3].T + self.frame[:3, 3]
        return local


def same_model(a: Shape, b: Shape) -> bool:
    """Whether results `a` and `b` come from the same model, so one can be blended toward the other: the
    same model folder where both recorded one, else the same model name, and latents of the same size."""
    if a.latent.shape != b.latent.shape:
        return False
    if a.model_path and b.model_path:
        return a.model_path == b.model_path
    return a.model_name == b.model_name


def latent_fields(meshes: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Of each reply mesh, only what result_props reads (the latent and its frame, not the mesh arrays)."""
    keys = ("latent", "scale", "offset", "label")
    return [{k: m[k] for k in keys if k in m} for m in meshes]


def shifted(shift: Any) -> np.ndarray:
    """The 4x4 frame of a result whose object coordinates are the reply's moved by `shift` (3,)."""
    frame = np.eye(4)
    frame[:3, 3] = np.asarray(shift, dtype=np.float64)
    return frame


def result_props(mesh: Mapping[str, Any], model_path: str | None, frame: np.ndarray,
                 face_budget: int | None = None) -> dict[str, Any]:
    """The custom properties (keys without the "atlasvae_" prefix) that make a result explorable, from its
    reply mesh (latent, scale, offset, label), `frame`, the 4x4 map from the reply's coordinates to the
    object's, and the `face_budget` it was asked with (its closed surface is remade with the same); {} for
    a reply from a backend that sends no latent."""
    if "latent" not in mesh:
        return {}
    props: dict[str, Any] = {"latent": [float(v) for v in decode_latent(mesh["latent"], "mesh latent")],
                             "scale": float(mesh.get("scale", 1.0)),
                             "offset": [float(v) for v in mesh.get("offset", (0.0, 0.0, 0.0))],
                             "frame": [float(v) for v in np.asarray(frame, dtype=np.float64).ravel()]}
    if mesh.get("label"):
        props["label"] = str(mesh["label"])
    if model_path:
        props["model_path"] = str(model_path)
    if face_budget is not None:
        props["face_budget"] = int(face_budget)
    return props


@dataclass(frozen=True)
class Direction:
    """One direction of a model's latent space: its index (sent back in `moves`), what it changes (at most
    16 characters: the slider's label) and the training codes' standard deviation along it."""

    index: int
    description: str
    sigma: float


@dataclass(frozen=True)
class DirectionTable:
    """The backend's `directions` reply: the set's label (None: the model-wide set), its directions, the
    families with their own sets and the largest amount a move may have (in sigmas)."""

    label: str | None
    directions: tuple[Direction, ...]
    families: tuple[str, ...]
    max_amount: float

    @classmethod
    def from_reply(cls, reply: Mapping[str, Any]) -> DirectionTable:
        """Read a `directions` reply; ValueError naming the field that is malformed."""
        if not isinstance(reply, Mapping):
            raise ValueError(f"directions reply must be an object, got {type(reply).__name__}")
        raw = reply.get("directions")
        if not isinstance(raw, list):
            raise ValueError("directions reply has no 'directions' list")
        out = []
        for i, item in enumerate(raw[:MAX_SLIDERS]):
            if not isinstance(item, Mapping) or not isinstance(item.get("index"), int):
                raise ValueError(f"direction {i} of the reply has no integer 'index'")
            out.append(Direction(int(item["index"]), str(item.get("description", f"direction {i + 1}")),
                                 float(item.get("sigma", 1.0))))
        max_amount = float(reply.get("max_amount", DEFAULT_MAX_AMOUNT))
        if not math.isfinite(max_amount) or max_amount <= 0:
            raise ValueError(f"directions reply's max_amount must be a positive number, got {max_amount!r}")
        label = reply.get("label")
        return cls(label=str(label) if label else None, directions=tuple(out),
                   families=tuple(str(f) for f in reply.get("families", ()) or ()), max_amount=max_amount)


def moves(table: DirectionTable, amounts: Sequence[float]) -> list[dict[str, Any]]:
    """The `moves` param for slider values `amounts` (one per direction of `table`, in sigmas): every
    non-zero one, clamped to the table's max_amount."""
    out = []
    for direction, amount in zip(table.directions, amounts):
        a = max(-table.max_amount, min(table.max_amount, float(amount)))
        if a != 0.0:
            out.append({"direction": direction.index, "amount": a})
    return out


def explore_params(shape: Shape, table: DirectionTable, amounts: Sequence[float], surface: str, face_budget: int,
                   toward: np.ndarray | None = None, blend: float = 0.0) -> dict[str, Any]:
    """The `explore` request for `shape` moved by `amounts` along `table`'s directions and blended `blend`
    (0..1) toward the latent `toward`, decoded in the shape's own frame with `surface`."""
    params: dict[str, Any] = {"latent": encode_latent(shape.latent), "moves": moves(table, amounts),
                              "scale": shape.scale, "offset": list(shape.offset), "resolution": shape.resolution,
                              "surface": surface, "face_budget": int(face_budget)}
    if table.label is not None:
        params["label"] = table.label
    if toward is not None and blend > 0.0:
        if np.asarray(toward).shape != shape.latent.shape:
            raise ValueError(f"the Toward result's latent has {np.asarray(toward).size} values but this one has "
                             f"{shape.latent.size}: they come from different models")
        params["toward"] = encode_latent(toward)
        params["blend"] = max(0.0, min(1.0, float(blend)))
    return params


@dataclass(frozen=True)
class Position:
    """The slider state a request was made from: what a final reply stores beside the mesh it brings, so
    the stored values always match the mesh (the sliders may have moved on while it was out)."""

    amounts: tuple[float, ...] = ()
    blend: float = 0.0
    toward: tuple[float, ...] | None = None
    toward_name: str = ""


@dataclass(frozen=True)
class Request:
    """One `explore` request: `serial` orders them; `final` marks the one a slider release asks for (the
    closed surface, and one undo step once applied); `position` is the slider state its params encode."""

    serial: int
    params: dict[str, Any]
    final: bool = False
    position: Position = Position()


class Coalescer:
    """At most one request in flight and at most one waiting; a newer request replaces the waiting one.

    Thread-safe: the main thread offers requests, the thread that receives a reply calls `finished`, which
    hands back the waiting request to send next. A final request replaced by a newer live one is not lost:
    the newer request inherits `final` and the final one's "surface" (the release still gets the object's
    own surface and its undo step, never the live patches)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._serial = 0
        self.in_flight: Request | None = None
        self.waiting: Request | None = None
        self.sent = 0
        self.replaced = 0

    def offer(self, params: dict[str, Any], final: bool = False, position: Position = Position()
              ) -> tuple[Request, bool]:
        """Queue a request for `params` (made from the sliders at `position`): (the request, whether to send
        it now). It is sent now when nothing is in flight; else it waits, replacing an older waiting one."""
        with self._lock:
            self._serial += 1
            if self.waiting is not None:
                self.replaced += 1
                if self.waiting.final and not final:
                    final = True
                    if "surface" in self.waiting.params:
                        params = {**params, "surface": self.waiting.params["surface"]}
            request = Request(self._serial, params, final, position)
            if self.in_flight is None:
                self.in_flight, self.waiting = request, None
                self.sent += 1
                return request, True
            self.waiting = request
            return request, False

    def finished(self, request: Request) -> Request | None:
        """`request`'s reply arrived (or it failed): the waiting request to send now, if any."""
        with self._lock:
            if self.in_flight is not request:
                raise ValueError(f"request {request.serial} is not the one in flight")
            self.in_flight, self.waiting = self.waiting, None
            if self.in_flight is not None:
                self.sent += 1
            return self.in_flight

    def idle(self) -> bool:
        """Whether nothing is in flight or waiting."""
        with self._lock:
            return self.in_flight is None and self.waiting is None


def amounts_of(values: Sequence[float], count: int) -> list[float]:
    """Slider values as stored on an object (any length), padded or cut to `count`."""
    out = [float(v) for v in list(values)[:count]]
    return out + [0.0] * (count - len(out))


def random_amounts(table: DirectionTable, rng: np.random.Generator, spread: float = RANDOM_SPREAD) -> list[float]:
    """Randomise's slider values: one draw per direction from N(0, `spread`) in sigmas, so the shape moves
    that far from the result as made (not a fresh sample of the model), within the table's max_amount and
    rounded to hundredths (as a slider shows them)."""
    draws = rng.normal(0.0, spread, size=len(table.directions))
    return [round(float(np.clip(d, -table.max_amount, table.max_amount)), 2) for d in draws]
