"""The registry of RPC methods. Each method is declared once, by the `rpc` decorator on its handler in
dispatcher.py: its params (declared options from backend/options.py, or plain wire Params), whether it runs
on the model thread, and its result for the docs. Torch-free, so requests are checked before the model loads.

To add a method, decorate its handler: `@rpc("name", OPTION, Param("x", "str"), model=True, result="{...}")`;
the dispatcher, the param checks and the docs' tables (scripts/wire_tables.py) follow from that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from ..options import Option, cell
from .protocol import Param

Handler = TypeVar("Handler", bound=Callable[..., Any])


@dataclass(frozen=True)
class Method:
    """One RPC method: its params, the declared options among them, whether it needs the model thread, its
    handler (a Server method) and its documented result."""

    name: str
    params: tuple[Param, ...]
    options: tuple[Option, ...]
    model: bool
    handler: Callable[..., Any]
    result: str
    note: str = ""


METHODS: dict[str, Method] = {}


def rpc(name: str, *params: Param | Option, model: bool = False, result: str = "{}", note: str = "",
        within: tuple[Option, ...] = ()) -> Callable[[Handler], Handler]:
    """Register the decorated handler as method `name` (model: it runs on the model thread, one at a time).

    `within`: declared options that a list or object param holds (e.g. `amount` in each of explore's moves,
    built with `wire`); they join the method's options for the docs, and must be found there."""
    def register(handler: Handler) -> Handler:
        if name in METHODS:
            raise ValueError(f"RPC method {name!r} declared twice")
        specs = tuple(wire(p) if isinstance(p, Option) else p for p in params)
        for option in within:
            if wire(option) not in nested_params(specs):
                raise ValueError(f"RPC method {name!r}: option {option.name!r} is in no list or object param")
        options = tuple(p for p in params if isinstance(p, Option)) + within
        METHODS[name] = Method(name, specs, options, model, handler, result, note)
        return handler
    return register


def wire(option: Option) -> Param:
    """The wire param of a declared option: same name, kind, bounds, choices and (wire) default."""
    return Param(option.name, option.kind, required=option.required, default=option.default, minimum=option.minimum,
                 maximum=option.maximum, choices=option.choices)


def nested_params(params: tuple[Param, ...]) -> list[Param]:
    """Every param at any depth: the params, the items of lists and the fields of objects among them."""
    found: list[Param] = []
    for p in params:
        found.append(p)
        found += nested_params(((p.item,) if p.item is not None else ()) + p.fields)
    return found


def method_table() -> str:
    """The docs' wire table: one row per method, optional params marked `?`."""
    rows = ["| method | params | result |", "|---|---|---|"]
    for method in METHODS.values():
        names = ", ".join(p.name if p.required else f"{p.name}?" for p in method.params)
        note = f" ({method.note})" if method.note else ""
        rows.append(f"| `{method.name}` | `{{{names}}}` | `{method.result}`{note} |")
    return "\n".join(rows)


def option_table() -> str:
    """The docs' option table: every declared option once, where it is taken, its values and each layer's
    default, then why a layer's default differs."""
    seen: list[Option] = []
    for method in METHODS.values():
        seen += [o for o in method.options if o not in seen]

    def users(option: Option) -> str:
        return ", ".join(m.name for m in METHODS.values() if option in m.options)

    rows = ["| option | methods | accepts | wire default | CLI default | add-on default |",
            "|---|---|---|---|---|---|"]
    rows += [f"| `{o.name}` | {users(o)} | {o.describe()} | {cell(o.default)} | {cell(o.cli_default)} | "
             f"{cell(o.addon_default)} |" for o in seen]
    rows += ["", "Defaults that differ by layer, on purpose:", ""]
    rows += [f"- `{o.name}` ({users(o)}): {o.why}" for o in seen if o.why]
    return "\n".join(rows)
