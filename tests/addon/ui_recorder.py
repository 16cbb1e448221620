"""A stand-in for Blender's UILayout (the one thing a headless bpy cannot give a panel), checked
against Blender's own description of UILayout, so a panel's real draw() can run in tests.

Every call is looked up in `bpy.types.UILayout.bl_rna.functions`: an unknown function, an unknown
keyword or an unknown icon fails, as it would in Blender. `prop` checks the property exists on its
data, `operator` that the operator is registered (and that any option set on the button exists),
`menu`/`popover` that the menu or panel is registered. Calls that give a sub-layout in Blender
(row, column, box, split, panel...) give a nested recorder that writes to the same log.
"""

from __future__ import annotations

from typing import Any, Callable


def _registered_operator(bpy: Any, idname: str) -> Any:
    """The RNA description of operator `idname` ("group.name"); fails if it is not registered."""
    group, _, name = idname.partition(".")
    assert getattr(bpy.types, f"{group.upper()}_OT_{name}", None) is not None, f"operator {idname} is not registered"
    return getattr(getattr(bpy.ops, group), name).get_rna_type()


class OperatorButton:
    """What layout.operator() returns: accepts only options the operator really has."""

    def __init__(self, rna: Any, idname: str, log: dict[str, list[Any]]) -> None:
        object.__setattr__(self, "_rna", rna)
        object.__setattr__(self, "_idname", idname)
        object.__setattr__(self, "_log", log)

    def __setattr__(self, name: str, value: Any) -> None:
        assert name in self._rna.properties, f"operator {self._idname} has no option {name!r}"
        self._log["operator_options"].append((self._idname, name, value))


class RecordingLayout:
    """Records what a panel draws; every call is checked against the real UILayout API."""

    def __init__(self, bpy: Any, log: dict[str, list[Any]]) -> None:
        object.__setattr__(self, "_bpy", bpy)
        object.__setattr__(self, "_log", log)

    def __setattr__(self, name: str, value: Any) -> None:
        assert name in self._bpy.types.UILayout.bl_rna.properties, f"UILayout has no attribute {name!r}"
        if name == "use_property_split":
            self._log["split"].append(value)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        func = self._bpy.types.UILayout.bl_rna.functions.get(name)
        assert func is not None, f"UILayout has no function {name!r}"
        inputs = [p for p in func.parameters if not p.is_output]
        outputs = [p for p in func.parameters if p.is_output]

        def call(*args: Any, **kwargs: Any) -> Any:
            assert len(args) <= len(inputs), f"{name}() takes at most {len(inputs)} positional arguments"
            named = {p.identifier: value for p, value in zip(inputs, args)}
            for key, value in kwargs.items():
                assert key in {p.identifier for p in inputs}, f"UILayout.{name}() has no keyword {key!r}"
                named[key] = value
            for p in inputs:
                if p.is_required:
                    assert p.identifier in named, f"UILayout.{name}() needs {p.identifier!r}"
                if p.type == "ENUM" and p.identifier in named and p.identifier == "icon":
                    assert named["icon"] in p.enum_items.keys(), f"unknown icon {named['icon']!r}"
            return self._record(name, named, outputs)

        return call

    def _record(self, name: str, named: dict[str, Any], outputs: list[Any]) -> Any:
        bpy, log = self._bpy, self._log
        log["calls"].append(name)
        if name in ("prop", "prop_enum", "prop_menu_enum", "prop_tabs_enum", "props_enum", "prop_search"):
            data, prop = named["data"], named["property"]
            assert prop in data.bl_rna.properties, f"{type(data).__name__} has no property {prop!r}"
            log["props"].append(prop)
        elif name == "operator":
            idname = named["operator"]
            log["operators"].append(idname)
            log["operator_texts"].append((idname, named.get("text")))
            return OperatorButton(_registered_operator(bpy, idname), idname, log)
        elif name == "label":
            log["labels"].append(named.get("text", ""))
        elif name == "progress":
            assert 0.0 <= float(named.get("factor", 0.0)) <= 1.0
            log["progress"].append(named.get("text", ""))
        elif name in ("menu", "popover"):
            target = named.get("menu") or named.get("panel")
            assert hasattr(bpy.types, target), f"{name} {target!r} is not registered"
            log["menus"].append(target)
        results = [RecordingLayout(bpy, log) if p.type == "POINTER" and p.fixed_type.identifier == "UILayout"
                   else None for p in outputs]
        if not results:
            return None
        return results[0] if len(results) == 1 else tuple(results)


def new_log() -> dict[str, list[Any]]:
    """An empty drawing log."""
    return {"calls": [], "props": [], "operators": [], "operator_options": [], "labels": [], "progress": [],
            "menus": [], "split": [], "operator_texts": []}


class PanelStandIn:
    """`self` for a panel's draw(): the panel class's own attributes and methods, bound to this object,
    with only `layout` (what Blender provides while drawing) stood in."""

    def __init__(self, panel_cls: type, layout: RecordingLayout) -> None:
        self._cls = panel_cls
        self.layout = layout

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._cls, name)
        return value.__get__(self, type(self)) if hasattr(value, "__get__") and callable(value) else value


def draw(bpy: Any, panel_cls: type, context: Any = None) -> dict[str, list[Any]]:
    """Run the real `panel_cls.draw` (and draw_header if any) of a panel or menu with a recording
    layout; return the log. A class with its own poll() must allow drawing in `context`."""
    context = context if context is not None else bpy.context
    log = new_log()
    stand_in = PanelStandIn(panel_cls, RecordingLayout(bpy, log))
    if "poll" in vars(panel_cls) or hasattr(panel_cls, "bl_space_type"):
        assert panel_cls.poll(context)  # type: ignore[attr-defined]
    if "draw_header" in vars(panel_cls):
        panel_cls.draw_header(stand_in, context)  # type: ignore[attr-defined]
    panel_cls.draw(stand_in, context)  # type: ignore[attr-defined]
    return log


def draw_function(bpy: Any, fn: Any, host_cls: type, context: Any = None) -> dict[str, list[Any]]:
    """Run a draw function appended to one of Blender's menus (`host_cls`) with a recording layout."""
    log = new_log()
    fn(PanelStandIn(host_cls, RecordingLayout(bpy, log)), context if context is not None else bpy.context)
    return log
