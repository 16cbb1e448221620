"""Runs inside a real Blender window (tier.py): drives the installed AtlasVAE extension with input
events through Blender's own event simulation (`--enable-event-simulate`: each event goes through the
window's event queue, keymaps and UI handlers like a person's mouse and keys), checks the scene, the
Info reports and timings, saves screenshots, writes result.json and quits.

Buttons are found the way a person finds them, by where they are drawn: the mouse moves down the
sidebar and Ctrl+C (which copies the hovered button's Python command or value) says what is under it.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Generator

import bpy
from bpy_extras import view3d_utils
from mathutils import Vector

OUT = Path(os.environ.get("GUI_OUT", "/gui"))
PKG = "bl_ext.user_default.atlasvae"
R: dict[str, Any] = {"checks": [], "timings": {}, "notes": [], "error": None}
Steps = Generator[float, None, Any]
MOUSE = [800, 450]
BEATS: list[float] = []  # main-thread heartbeat times (a gap is a freeze)
jobs: Any = None  # the add-on's jobs module, once it is enabled


def check(name: str, ok: bool, detail: Any = "") -> bool:
    R["checks"].append({"name": name, "ok": bool(ok), "detail": str(detail)[:400]})
    print(f"GUI CHECK {'ok' if ok else 'FAIL'} {name}: {detail}", flush=True)
    return bool(ok)


def note(text: str) -> None:
    R["notes"].append(text)
    print(f"GUI NOTE {text}", flush=True)


def window() -> bpy.types.Window:
    return bpy.context.window_manager.windows[0]


def ev(kind: str, value: str = "PRESS", **kw: Any) -> None:
    """One simulated event at the current mouse position."""
    window().event_simulate(type=kind, value=value, x=MOUSE[0], y=MOUSE[1], **kw)


def move(x: float, y: float) -> Steps:
    MOUSE[0], MOUSE[1] = int(x), int(y)
    ev("MOUSEMOVE", "NOTHING")
    yield 0.08


def press_and_drag(at: tuple[float, float], steps: int) -> Steps:
    """Press the left button at `at` and move right 4 px a step, the button held (no release)."""
    yield from move(*at)
    ev("LEFTMOUSE", "PRESS")
    yield 0.05
    for _step in range(steps):
        MOUSE[0] += 4
        ev("MOUSEMOVE", "NOTHING")
        yield 0.05


def key(kind: str, wait: float = 0.15, **kw: Any) -> Steps:
    ev(kind, "PRESS", **kw)
    yield 0.03
    ev(kind, "RELEASE", **kw)
    yield wait


def click(x: float, y: float) -> Steps:
    yield from move(x, y)
    yield from key("LEFTMOUSE", 0.3)


def type_text(text: str) -> Steps:
    for ch in text:
        kind = {" ": "SPACE", ".": "PERIOD", "-": "MINUS"}.get(ch) or (
            ["ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE"][int(ch)]
            if ch.isdigit() else ch.upper())
        ev(kind, "PRESS", unicode=ch)
        yield 0.02
        ev(kind, "RELEASE")
        yield 0.04


def wait_until(cond: Callable[[], Any], timeout: float, step: float = 0.1) -> Steps:
    """Wait until cond() is true; returns the seconds waited, or None on timeout."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if cond():
                return time.monotonic() - start
        except Exception:
            pass
        yield step
    return None


def shot(name: str) -> Steps:
    yield 0.6  # let Blender draw what just changed
    subprocess.run(["import", "-window", "root", str(OUT / f"{name}.png")], check=False)
    print(f"GUI SHOT {name}.png", flush=True)
    yield 0.05


def area(kind: str) -> bpy.types.Area:
    return next(a for a in window().screen.areas if a.type == kind)


def region(a: bpy.types.Area, kind: str) -> bpy.types.Region:
    return next(r for r in a.regions if r.type == kind)


def info_text() -> str:
    """Every report in the Info editor (select all, copy), as a person would read them there."""
    a = area("INFO")
    wm = bpy.context.window_manager
    with bpy.context.temp_override(window=window(), area=a, region=region(a, "WINDOW")):
        bpy.ops.info.select_all(action="SELECT")
        bpy.ops.info.report_copy()
        bpy.ops.info.select_all(action="DESELECT")
    return str(wm.clipboard)


def reports_since(mark: int) -> str:
    return info_text()[mark:]


def results() -> list[bpy.types.Object]:
    return [o for o in bpy.data.objects if o.type == "MESH" and "atlasvae_model" in o.keys()]


def max_gap(since: float) -> float:
    beats = [t for t in BEATS if t >= since]
    return max((b - a for a, b in zip(beats, beats[1:])), default=0.0)


def box_of(obj: bpy.types.Object) -> tuple[Any, Any]:
    """World-space box of a result from its mesh and its evaluated world matrix."""
    m = obj.matrix_world
    pts = [m @ v.co for v in obj.data.vertices]
    return ([min(p[i] for p in pts) for i in range(3)], [max(p[i] for p in pts) for i in range(3)])


def inside_earlier(name: str, earlier: set[str]) -> list[str]:
    """The earlier results whose box the result `name` overlaps (a shape landing inside a batch)."""
    bpy.context.view_layer.update()
    lo, hi = box_of(bpy.data.objects[name])
    hits = []
    for other in earlier:
        olo, ohi = box_of(bpy.data.objects[other])
        if all(lo[i] < ohi[i] and olo[i] < hi[i] for i in range(3)):
            hits.append(other)
    return hits


def hover_python(x: float, y: float) -> Steps:
    """What Ctrl+C copies for the button under (x, y): an operator button's Python command, a field's
    value ('' when none)."""
    yield from move(x, y)
    bpy.context.window_manager.clipboard = ""
    yield from key("C", 0.08, ctrl=True)
    text = str(bpy.context.window_manager.clipboard)
    print(f"GUI HOVER {x:.0f},{y:.0f}: {text!r}", flush=True)
    return text


def find_button(reg: bpy.types.Region, prefix: str, step: int = 12) -> Steps:
    """Scan the region top-down for the button whose Python command starts with `prefix`."""
    x = reg.x + reg.width * 0.4
    y = reg.y + reg.height - 12
    while y > reg.y + 4:
        text = yield from hover_python(x, y)
        if text.startswith(prefix):
            return (x, y)
        y -= step
    return None


def scan_popup(dx: float = 230, depth: int = 320, step: int = 6) -> Steps:
    """Hover down the field column of the popup that opened at the mouse: [(y, what Ctrl+C copied)]
    for every probe that copied something; notes the row pitch from the first two fields."""
    x, top = MOUSE[0] + dx, MOUSE[1]
    found = []
    for y in range(int(top) - 6, int(top) - depth, -step):
        text = yield from hover_python(x, y)
        if text:
            found.append((y, text))
    MOUSE[0] = int(x)
    centres: list[float] = []
    run: list[int] = []
    for (y, text), nxt in zip(found, found[1:] + [(None, None)]):
        run.append(y)
        if nxt[1] != text or (nxt[0] is not None and y - nxt[0] > step):
            centres.append(sum(run) / len(run))
            run = []
    if len(centres) >= 2:  # adjacent rows are the closest centres
        R.setdefault("f9_row_pitch_px", min(a - b for a, b in zip(centres, centres[1:])))
    return found


def leave_popup() -> Steps:
    """Move the mouse far from an open popup (F9's), which closes it as it does for a person."""
    vp = viewport()
    yield from move(vp.x + 40, vp.y + vp.height - 120)
    yield 0.5
    yield from move(vp.x + 80, vp.y + vp.height - 160)
    yield 0.5


def click_object(obj: bpy.types.Object) -> Steps:
    """Click where `obj`'s origin is drawn in the viewport (selects it alone, makes it active)."""
    vp = viewport()
    at = view3d_utils.location_3d_to_region_2d(vp, area("VIEW_3D").spaces.active.region_3d, obj.location)
    yield from click(vp.x + at.x, vp.y + at.y)


def sidebar() -> bpy.types.Region:
    return region(area("VIEW_3D"), "UI")


def viewport() -> bpy.types.Region:
    return region(area("VIEW_3D"), "WINDOW")


def centre(reg: bpy.types.Region) -> tuple[float, float]:
    return reg.x + reg.width / 2, reg.y + reg.height / 2


def heartbeat() -> float:
    BEATS.append(time.monotonic())
    return 0.02


def add_menu_search(text: str) -> Steps:
    """Shift+A over the viewport, type to search the Add menu, Return on the first match."""
    yield from move(*centre(viewport()))
    yield from key("A", 0.5, shift=True)
    yield from type_text(text)
    yield 0.6


def f3_search(text: str, name: str | None = None) -> Steps:
    """F3 menu search: type, screenshot, Return."""
    yield from move(*centre(viewport()))
    yield from key("F3", 0.6)
    yield from type_text(text)
    yield 0.8
    if name:
        yield from shot(name)
    yield from key("RET", 0.5)


def find_prop(reg: bpy.types.Region, needle: str, step: int = 8) -> Steps:
    """Scan the region's field column top-down for the field whose data path (Ctrl+Shift+C) contains
    `needle`; returns its (x, y) or None."""
    x = reg.x + reg.width * 0.75
    y = reg.y + reg.height - 12
    while y > reg.y + 4:
        yield from move(x, y)
        bpy.context.window_manager.clipboard = ""
        yield from key("C", 0.08, ctrl=True, shift=True)
        if needle in str(bpy.context.window_manager.clipboard):
            return (x, y)
        y -= step
    return None


def positions(obj: bpy.types.Object) -> list[tuple[float, ...]]:
    return [tuple(round(c, 5) for c in v.co) for v in obj.data.vertices]


def explorer_step(name: str) -> Steps:
    """Drag the first Explorer slider of result `name` with real mouse events: the mesh follows mid-drag,
    holding the mouse still is not a release, the release keeps the shape with one undo step, Ctrl+Z
    gives the previous shape back."""
    from importlib import import_module

    explore = import_module(PKG + ".explore")
    obj = bpy.data.objects[name]
    corners = [obj.matrix_world @ Vector(c) for c in obj.bound_box]
    middle = sum(corners, Vector()) / 8.0
    vp = viewport()
    at = view3d_utils.location_3d_to_region_2d(vp, area("VIEW_3D").spaces.active.region_3d, middle)
    yield from click(vp.x + at.x, vp.y + at.y)
    check("clicking a result selects it for the Explorer", bpy.context.view_layer.objects.active == obj,
          bpy.context.view_layer.objects.active)
    bar = sidebar()
    found = None
    for _scroll in range(6):  # the Explorer is the last sub-panel: scroll the sidebar down to it
        found = yield from find_prop(bar, "atlasvae_explorer.amounts")
        if found is not None:
            break
        yield from move(*centre(bar))
        for _tick in range(8):
            ev("WHEELDOWNMOUSE", "PRESS")
            yield 0.03
        yield 1.0  # directions load on first show
    yield from shot("06b_explorer_panel")
    if not check("the Explorer panel shows direction sliders for the selected result", found is not None):
        return
    before = positions(obj)
    t0 = time.monotonic()
    yield from press_and_drag(found, 15)
    yield 0.3
    obj = bpy.data.objects[name]
    check("dragging an Explorer slider reshapes the result while the mouse moves", positions(obj) != before,
          f"{len(obj.data.vertices)} vertices now, {len(before)} before")
    yield from shot("06c_explorer_mid_drag")
    yield 1.2  # the mouse held still, the button still down: not a release
    check("holding the mouse still mid-drag is not a release (nothing committed yet)",
          obj.get("atlasvae_amounts") is None and explore._watching[0], dict(obj.items()).get("atlasvae_amounts"))
    ev("LEFTMOUSE", "RELEASE")
    done = yield from wait_until(lambda: bpy.data.objects[name].get("atlasvae_amounts") is not None, 60)
    R["timings"]["explorer_drag_to_final_shape"] = time.monotonic() - t0
    R["timings"]["explorer_max_main_thread_gap"] = max_gap(t0)
    obj = bpy.data.objects[name]
    amounts = list(obj.get("atlasvae_amounts", []))
    check("the LEFTMOUSE release keeps the dragged shape (slider value stored)", done is not None
          and abs(amounts[0]) > 0.1, amounts)
    live = explore.session()
    if live is not None and live.timings:
        latencies = sorted(t[0] for t in live.timings)
        R["timings"]["explorer_change_to_mesh_median"] = latencies[len(latencies) // 2]
        note(f"explorer: {live.coalescer.sent} requests sent, {live.coalescer.replaced} replaced while one was out, "
             f"{len(live.timings)} applied; surface now {obj.get('atlasvae_surface')}")
    yield from shot("06d_explorer_released")
    after = positions(obj)
    yield from move(*centre(viewport()))
    yield from key("Z", 1.0, ctrl=True)
    restored = yield from wait_until(lambda: positions(bpy.data.objects[name]) == before, 10)
    check("Ctrl+Z after the drag gives the previous shape back (one undo step)", restored is not None,
          f"{len(bpy.data.objects[name].data.vertices)} vertices, {len(before)} before, {len(after)} dragged")
    yield from shot("06e_explorer_undone")

    # A typed value is one change: click the slider (text editing), type, Return: kept at once, one step.
    yield from click(*found)
    yield from type_text("-1.5")
    yield from key("RET", 0.3)
    typed = yield from wait_until(lambda: list(bpy.data.objects[name].get("atlasvae_amounts", [0]))[0] == -1.5, 60)
    check("a value typed into an Explorer slider is kept at once (no drag, no release needed)", typed is not None,
          list(bpy.data.objects[name].get("atlasvae_amounts", [])))
    yield from shot("06f_explorer_typed")
    yield from move(*centre(viewport()))
    yield from key("Z", 1.0, ctrl=True)
    restored = yield from wait_until(lambda: positions(bpy.data.objects[name]) == before, 10)
    check("Ctrl+Z after the typed value gives the shape before it back", restored is not None)

    # Esc mid-drag gives the slider its old value back and the shape too.
    yield from press_and_drag(found, 8)
    yield 0.5
    moved = positions(bpy.data.objects[name]) != before
    yield from key("ESC", 0.3)
    ev("LEFTMOUSE", "RELEASE")

    def back() -> bool:
        live = explore.session()
        now = bpy.data.objects[name]
        return (live is not None and live.coalescer.idle() and len(now.data.vertices) == len(before)
                and max(abs(a - b) for p, q in zip(positions(now), before) for a, b in zip(p, q)) < 1e-3)

    undone = yield from wait_until(back, 60)
    check("Esc mid-drag puts the slider and the shape back", moved and undone is not None
          and not any(bpy.data.objects[name].get("atlasvae_amounts", [0.0])),
          f"moved mid-drag {moved}; amounts {list(bpy.data.objects[name].get('atlasvae_amounts', []))}")
    yield from shot("06g_explorer_esc")


def scenario() -> Steps:
    global jobs
    prefs = bpy.context.preferences
    prefs.view.show_splash = False
    check("add-on installed and enabled as an extension", PKG in prefs.addons, list(prefs.addons.keys()))
    if PKG not in prefs.addons:
        return
    from importlib import import_module
    jobs = import_module(PKG + ".jobs")
    # Setup a person would have done already: the Info editor where the timeline is; samples away from the cube.
    timeline = next(a for a in window().screen.areas if a.type == "DOPESHEET_EDITOR")
    timeline.type = "INFO"
    bpy.context.scene.cursor.location = (0.0, 5.0, 0.0)
    yield 1.0
    yield from move(*centre(viewport()))
    yield from key("ESC", 0.5)  # the splash, if any
    yield from shot("00_start")

    # 1. The sidebar tab.
    yield from key("N", 0.8)
    bar = sidebar()
    check("N opens the sidebar", bar.width > 50, f"width {bar.width}")
    y = bar.y + bar.height - 10
    while getattr(bar, "active_panel_category", "") != "AtlasVAE" and y > bar.y:
        yield from click(bar.x + bar.width - 10, y)  # down the tab strip on the sidebar's right edge
        y -= 20
    check("clicking the AtlasVAE tab opens it", getattr(bar, "active_panel_category", "?") == "AtlasVAE",
          getattr(bar, "active_panel_category", "?"))
    yield from shot("01_sidebar")

    # 2. Sample Shapes from the sidebar.
    found = yield from find_button(bar, "bpy.ops.atlasvae.sample(")
    if not check("Sample Shapes button found in the sidebar", found is not None):
        return
    mark = len(info_text())
    before = len(results())
    t0 = time.monotonic()
    yield from click(*found)
    waited = yield from wait_until(lambda: len(results()) >= before + 4, 300)
    R["timings"]["sample_4_click_to_scene"] = time.monotonic() - t0
    check("Sample Shapes adds 4 shapes", waited is not None, f"{len(results()) - before} new")
    yield from wait_until(lambda: "Sampled" in reports_since(mark), 20)
    text = reports_since(mark)
    check("Sample Shapes reported in Info/status bar", "Sampled 4 shapes" in text, text.strip()[-200:])
    R["timings"]["sample_max_main_thread_gap"] = max_gap(t0)
    first_four = {o.name: [tuple(v.co) for v in o.data.vertices[:50]] for o in results()}
    yield from shot("02_sampled")

    # 3. F9 on Sample Shapes: Count 4 -> 6 (the first four shapes stay the same: item 3).
    yield from move(*centre(viewport()))
    yield from key("F9", 0.8)
    yield from shot("03_f9_popup")
    fields = yield from scan_popup()
    count_at = next((y for y, text in fields if text == "4"), None)
    if check("F9 popup shows Count = 4", count_at is not None, fields):
        yield from move(MOUSE[0], count_at)
        t0 = time.monotonic()
        yield from key("RET", 0.3)
        yield from type_text("6")
        ev("RET", "PRESS")
        yield 0.03
        ev("RET", "RELEASE")
        queued = yield from wait_until(lambda: any(t.label == "Sample Shapes" for t in jobs.pending()), 5, 0.02)
        R["timings"]["f9_count_redo_main_thread_gap"] = max_gap(t0)  # the redo itself (undo + execute)
        check("F9 Count 6 returns at once and asks the backend as a job, Blender stays live (item 2)",
              queued is not None, f"job seen after {queued} s" if queued is not None else "ran on the main thread")
        yield from shot("04a_f9_count6_running")
        t1 = time.monotonic()  # the screenshot itself stalls the main thread: not counted
        waited = yield from wait_until(lambda: len(results()) >= before + 6, 300)
        R["timings"]["f9_count_6"] = time.monotonic() - t0
        R["timings"]["f9_count_max_main_thread_gap"] = max(R["timings"]["f9_count_redo_main_thread_gap"],
                                                           max_gap(t1))
        check("F9 Count 6 gives 6 shapes", waited is not None, f"{len(results()) - before} shapes")
        now = {o.name: [tuple(v.co) for v in o.data.vertices[:50]] for o in results()}
        same = [n for n, co in first_four.items() if now.get(n) == co]
        check("F9 Count 4 -> 6 keeps the first 4 shapes (item 3)", len(same) == 4, f"{len(same)} of 4 unchanged")
        yield from shot("04_f9_count6")
    yield from leave_popup()
    yield from key("HOME", 0.8)

    # 4. Add > Mesh > AtlasVAE > Sample One Shape, then F9: Material off (a look-only change: item 2).
    before = len(results())
    names = {o.name for o in results()}
    yield from add_menu_search("sample one")
    yield from shot("05_add_menu")
    t0 = time.monotonic()
    yield from key("RET", 0.3)
    waited = yield from wait_until(lambda: len(results()) >= before + 1, 300)
    R["timings"]["add_menu_sample_one"] = time.monotonic() - t0
    check("Add menu Sample One Shape adds 1 shape", waited is not None, f"{len(results()) - before} new")
    new_one = next(iter({o.name for o in results()} - names), "")
    if new_one:
        hits = inside_earlier(new_one, names)
        check("Sample One Shape lands beside the earlier batch, not inside it (placement)", not hits, hits)
    yield from move(*centre(viewport()))
    yield from key("F9", 0.8)
    fields = yield from scan_popup()
    runs = [y for y, text in fields if text == "2562"]  # Vertices, the first row
    pitch = R.get("f9_row_pitch_px", 23.0)
    if check("F9 popup of Sample One Shape shows Vertices", bool(runs), fields):
        material_y = sum(runs) / len(runs) - 2 * pitch  # Vertices, Shading, Material
        t0 = time.monotonic()
        yield from click(MOUSE[0], material_y)
        done = yield from wait_until(lambda: len(results()) == before + 1 and not any(
            slot.material for slot in bpy.data.objects[new_one].material_slots), 300)
        R["timings"]["f9_material_off"] = time.monotonic() - t0
        R["timings"]["f9_material_max_main_thread_gap"] = max_gap(t0)
        check("F9 Material off re-makes the shape without the material", done is not None)
        if done is not None:
            hits = inside_earlier(new_one, names)
            check("the re-made shape still lands beside the earlier batch (placement)", not hits, hits)
    yield from shot("06_f9_material")
    yield from leave_popup()

    # 4b. The Shape Explorer on that shape: a slider drag with real mouse events, then Ctrl+Z.
    if new_one:
        yield from explorer_step(new_one)
        yield from move(*centre(sidebar()))
        for _tick in range(40):  # back to the top of the sidebar for the buttons below
            ev("WHEELUPMOUSE", "PRESS")
            yield 0.02

    # 5. Reconstruct the cube: select it with a click, press Reconstruct in the sidebar.
    cube = bpy.data.objects.get("Cube")
    if not check("default cube present", cube is not None):
        return
    yield from click_object(cube)
    check("clicking the cube selects it", cube.select_get() and bpy.context.view_layer.objects.active == cube,
          [o.name for o in bpy.context.selected_objects])
    button = yield from find_button(bar, "bpy.ops.atlasvae.reconstruct(")
    if check("Reconstruct button found", button is not None):
        before = len(results())
        mark = len(info_text())
        t0 = time.monotonic()
        yield from click(*button)
        waited = yield from wait_until(lambda: len(results()) > before, 600)
        R["timings"]["reconstruct_full_fit"] = time.monotonic() - t0
        R["timings"]["reconstruct_max_main_thread_gap"] = max_gap(t0)
        check("Reconstruct adds the cube's reconstruction", waited is not None)
        yield from wait_until(lambda: "Reconstructed" in reports_since(mark), 20)
        check("Reconstruct reported in Info", "Reconstructed" in reports_since(mark),
              reports_since(mark).strip()[-200:])
        yield from shot("07_reconstructed")

        # 5b. F9 on Reconstruct with more Fit Steps: a long full fit runs as a job, so Esc reaches it (item 2).
        yield from move(*centre(viewport()))
        yield from key("F9", 0.8)
        fields = yield from scan_popup(depth=200)  # a shorter popup: probing far below it would close it
        steps_at = next((y for y, text in fields if text == "0"), None)  # Fit Steps, 0 = the backend's default
        if check("F9 popup of Reconstruct shows Fit Steps", steps_at is not None, fields):
            mark = len(info_text())
            yield from move(MOUSE[0], steps_at)
            t0 = time.monotonic()
            yield from key("RET", 0.3)
            yield from type_text("1000")
            ev("RET", "PRESS")
            yield 0.03
            ev("RET", "RELEASE")
            queued = yield from wait_until(lambda: any(t.label == "Reconstruct" for t in jobs.pending()), 5, 0.02)
            R["timings"]["f9_fit_steps_redo_main_thread_gap"] = max_gap(t0)
            check("F9 Fit Steps 1000 returns at once and fits as a job (item 2)", queued is not None,
                  f"job seen after {queued} s" if queued is not None else "ran on the main thread")
            yield from leave_popup()
            yield from shot("07b_f9_refit_running")
            t0 = time.monotonic()
            yield from key("ESC", 0.5)
            gone = yield from wait_until(lambda: "Cancelled: Reconstruct" in reports_since(mark), 30)
            R["timings"]["f9_esc_to_cancelled_report"] = (time.monotonic() - t0) if gone is not None else -1
            check("Esc cancels the fit F9 started (item 2)", gone is not None and not jobs.pending(),
                  reports_since(mark).strip()[-200:])
            yield from key("HOME", 0.8)
        cube = bpy.data.objects["Cube"]  # F9's undo re-read the scene: earlier references are stale

        # 6. Esc during a running job cancels it (item 5).
        yield from click_object(cube)
        user_window = bpy.context.window_manager.keyconfigs.user.keymaps.get("Window")
        note("Esc in the user's Window keymap: " + str([(k.idname, k.type) for k in user_window.keymap_items
                                                         if k.idname.startswith("atlasvae")] if user_window else None))
        before = len(results())
        mark = len(info_text())
        yield from click(*button)
        yield 2.0
        yield from shot("08_job_running")
        yield from move(*centre(viewport()))
        t0 = time.monotonic()
        yield from key("ESC", 0.5)
        gone = yield from wait_until(lambda: "ancel" in reports_since(mark), 30)
        R["timings"]["esc_to_cancelled_report"] = (time.monotonic() - t0) if gone is not None else -1
        yield from shot("09_esc_cancelled")
        check("Esc cancels the running Reconstruct (item 5)", gone is not None, reports_since(mark).strip()[-200:])
        if gone is None and bpy.ops.atlasvae.cancel.poll():
            bpy.ops.atlasvae.cancel()
        yield 3.0
        check("a cancelled Reconstruct adds nothing", len(results()) == before, f"{len(results()) - before} new")

    # 7. A running fine-tune is protected: Stop Backend asks first (item 6); F3 finds the fine-tune's operators.
    from importlib import import_module
    backend = import_module(PKG + ".bpyfree.backend_process").backend
    state = bpy.context.window_manager.atlasvae_runtime
    s = bpy.context.scene.atlasvae
    s.finetune_source, s.finetune_epochs, s.finetune_name = "SELECTED", 50, "gui-ft"  # the panel's values
    yield from move(*centre(viewport()))
    yield from key("A", 0.5)  # select all
    yield from f3_search("start fine")
    running = yield from wait_until(lambda: state.job_state == "running", 180)
    check("F3 'start fine-tune' starts a fine-tune on the selected meshes", running is not None,
          f"{state.job_state}: {state.job_message}")
    if running is not None:
        yield from f3_search("stop backend")
        yield 1.0
        yield from shot("10_stop_asks_during_finetune")
        yield from key("ESC", 1.0)  # the confirmation's No
        check("Stop Backend asks first while a fine-tune runs (item 6)",
              backend.client is not None and state.job_running(), state.job_state)
        yield from wait_until(lambda: state.epoch >= 1, 180)  # a finished epoch to keep
        mark = len(info_text())
        yield from f3_search("stop backend")
        yield 1.0
        t0 = time.monotonic()
        yield from key("RET", 0.5)  # the confirmation's Stop Backend
        stopped = yield from wait_until(lambda: backend.client is None and not state.job_running(), 90)
        R["timings"]["stop_during_finetune_to_saved"] = time.monotonic() - t0
        yield from shot("11_stopped_finetune_saved")
        check("F3 'stop backend' stops the backend (item 5)", stopped is not None, reports_since(mark).strip()[-200:])
        check("Stop Backend lets the running fine-tune save: cancelled and resumable, not failed (item 6)",
              state.job_state == "cancelled" and "partial model kept" in state.job_message,
              f"{state.job_state}: {state.job_message}")
        yield from f3_search("start fine")  # the same name: it resumes on the data it recorded
        resumed = yield from wait_until(lambda: state.job_state == "running", 180)
        check("F3 'start fine-tune' under the same name resumes the stopped run (item 6)",
              resumed is not None and "resumed" in reports_since(mark), reports_since(mark).strip()[-200:])
        yield from f3_search("cancel fine")
        done = yield from wait_until(lambda: not state.job_running(), 180)
        check("F3 'cancel fine-tune' stops it", done is not None, state.job_state)

    # 8. F3 finds Release Memory and Stop Backend (item 5); then a bad interpreter makes one visible error
    # popup with the buttons that fix it (item 1).
    if backend.client is None:
        bpy.ops.atlasvae.backend_start()
        yield from wait_until(lambda: backend.running, 120)
    mark = len(info_text())
    yield from f3_search("release memory")
    released = yield from wait_until(lambda: "Released" in reports_since(mark) or "No model" in reports_since(mark), 30)
    check("F3 'release memory' releases the model (item 5)", released is not None, reports_since(mark).strip()[-200:])
    mark = len(info_text())
    yield from f3_search("stop backend", "12_f3_stop_backend")
    stopped = yield from wait_until(lambda: backend.client is None, 30)
    check("F3 'stop backend' stops the idle backend at once (item 5)", stopped is not None,
          reports_since(mark).strip()[-200:])
    if stopped is None:
        bpy.ops.atlasvae.backend_stop()
        yield from wait_until(lambda: backend.client is None, 30)
    prefs.addons[PKG].preferences.python_path = "/nonexistent/python3"
    mark = len(info_text())
    yield from add_menu_search("sample one")
    yield from key("RET", 0.3)
    err = yield from wait_until(lambda: "/nonexistent/python3" in reports_since(mark), 60)
    yield 1.0
    yield from shot("13_bad_interpreter")
    check("a bad Python Interpreter is reported in Info/status bar (item 1)", err is not None,
          reports_since(mark).strip()[-300:])
    windows = len(bpy.context.window_manager.windows)
    x, y = MOUSE
    fix = None
    for dy in range(30, -240, -8):  # down the popup that opened at the mouse
        text = yield from hover_python(x + 40, y + dy)
        if text.startswith("bpy.ops.preferences.addon_show("):
            fix = (x + 40, y + dy)
            break
    if check("the error popup has Open Add-on Preferences (item 1)", fix is not None):
        yield from key("RET", 1.5)  # menu items take hover + Return more reliably than a synthetic click
        opened = yield from wait_until(lambda: any(a.type == "PREFERENCES" for w in bpy.context.window_manager.windows
                                                   for a in w.screen.areas), 10)
        yield from shot("14_fix_opens_preferences")
        check("clicking it opens the add-on's preferences (item 1)", opened is not None,
              f"{windows} -> {len(bpy.context.window_manager.windows)} windows")


def finish() -> None:
    R["blender"] = bpy.app.version_string
    (OUT / "result.json").write_text(json.dumps(R, indent=1))
    print("GUI DONE", flush=True)
    try:
        __import__(PKG + ".jobs", fromlist=["shutdown"]).shutdown()  # stop the backend process
    finally:
        os._exit(0)


def runner() -> None:
    gen = scenario()

    def step() -> float | None:
        try:
            wait = next(gen)
        except StopIteration:
            finish()
            return None
        except Exception:
            R["error"] = traceback.format_exc()
            print(R["error"], flush=True)
            finish()
            return None
        return float(wait)

    bpy.app.timers.register(step, first_interval=2.0)
    bpy.app.timers.register(heartbeat, first_interval=1.0)


runner()
