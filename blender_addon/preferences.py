# mypy: disable-error-code="valid-type"
"""Add-on preferences (interpreter, device, user folder, start on load) and the operator that
installs the backend's Python environment (a venv plus pip) without freezing Blender.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import bpy
from bpy.props import BoolProperty, EnumProperty, StringProperty

from . import feedback
from .bpyfree import backend_process, installer, locate
from .runtime import runtime

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems

DEVICES = (("auto", "Auto", "CUDA if available, then Apple MPS, then CPU"),
           ("cpu", "CPU", "Always run on the CPU"),
           ("cuda", "CUDA", "NVIDIA GPU"),
           ("mps", "MPS", "Apple-silicon GPU"))
INSTALL_TICK_S = 0.25
RESTART_POLL_S = 1.0  # how often a restart deferred by a running fine-tune checks whether it has ended
TORCH_BUILD_ITEMS = [(b.key, b.label, b.description) for b in installer.builds_for()]


@dataclass(frozen=True)
class AddonSettings:
    """Preference values with defaults filled in, usable even when preferences are not registered."""

    python_path: str
    device: str
    user_dir: Path
    start_on_load: bool
    torch_build: str = installer.default_build().key
    index_url: str = ""
    wheelhouse: str = ""


def default_user_dir() -> Path:
    """A per-user folder outside Blender's own (~/.config/atlasvae and the like), so fine-tuned models and
    the backend environment survive a Blender upgrade; Blender's extension folder is per version."""
    return locate.fallback_user_dir()


def earlier_user_dirs() -> list[Path]:
    """Where earlier versions of the add-on kept models: this Blender's extension user folder (found
    again after an upgrade when its models were copied along with Blender's config)."""
    try:
        path = Path(bpy.utils.extension_path_user(__package__ or "", create=False))
    except (ValueError, AttributeError, OSError):
        return []
    return [path] if path.is_dir() else []


def addon_settings() -> AddonSettings:
    """Current preference values (defaults when the add-on was registered without preferences)."""
    prefs_root = bpy.context.preferences
    addon = prefs_root.addons.get(__package__ or "") if prefs_root is not None else None
    prefs = getattr(addon, "preferences", None) if addon is not None else None
    if prefs is None:
        return AddonSettings(python_path="", device="auto", user_dir=default_user_dir(), start_on_load=False)
    user_dir = str(prefs.user_dir).strip()
    return AddonSettings(python_path=bpy.path.abspath(str(prefs.python_path)).strip() if prefs.python_path else "",
                         device=str(prefs.device),
                         user_dir=Path(bpy.path.abspath(user_dir)) if user_dir else default_user_dir(),
                         start_on_load=bool(prefs.start_on_load), torch_build=str(prefs.torch_build),
                         index_url=str(prefs.index_url).strip(),
                         wheelhouse=bpy.path.abspath(str(prefs.wheelhouse)).strip() if prefs.wheelhouse else "")


class AtlasVAEPreferences(bpy.types.AddonPreferences):
    """Where the backend's Python lives, which device it uses and where user models go."""

    bl_idname = __package__ or ""

    python_path: StringProperty(name="Python Interpreter", subtype="FILE_PATH",
                                description="Python with torch for the backend; an error if it is missing or lacks torch. "
                                "Empty: $ATLASVAE_PYTHON, the environment made by 'Install backend dependencies', "
                                "the project .venv, then Blender's own Python")
    device: EnumProperty(name="Device", items=DEVICES, default="auto",
                         description="Where the model runs (applies on the next backend start)")
    user_dir: StringProperty(name="User Folder", subtype="DIR_PATH",
                             description="Holds fine-tuned models (models/), the backend environment (venv/) "
                             "and logs. Empty: the add-on's user folder")
    start_on_load: BoolProperty(name="Start Backend on Load", default=False,
                                description="Start the backend when the add-on loads instead of on first use")

    torch_build: EnumProperty(name="Torch Build", items=TORCH_BUILD_ITEMS, default=installer.default_build().key,
                              description="Which torch the installer puts in the backend environment")
    index_url: StringProperty(name="Torch Package Index",
                              description="Where torch is downloaded from. Empty: the chosen build's own index "
                              "(shown below); set it for a mirror or another CUDA version")
    wheelhouse: StringProperty(name="Offline Wheel Folder", subtype="DIR_PATH",
                               description="Install from this folder of wheels without any download (make it "
                               "with 'python build_addon.py --wheelhouse DIR'). Empty: download")

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.use_property_split = True  # labels in their own column, as Blender's own preferences (none cut)
        layout.use_property_decorate = False
        layout.prop(self, "python_path")
        layout.prop(self, "device")
        layout.prop(self, "user_dir")
        layout.label(text=f"In use: {addon_settings().user_dir}", icon="FILE_FOLDER")
        layout.prop(self, "start_on_load")
        self.draw_install(context, layout.box())

    def draw_install(self, context: bpy.types.Context, box: bpy.types.UILayout) -> None:
        """The backend environment box: torch build, sources, Install/Cancel/Log and progress."""
        box.label(text="Backend Environment", icon="CONSOLE")
        venv = locate.user_venv_dir(addon_settings().user_dir)
        if locate.venv_python(venv).is_file():
            box.label(text=f"Installed: {venv}", icon="CHECKMARK")
        box.prop(self, "torch_build")
        box.prop(self, "index_url")
        if not self.index_url.strip() and not self.wheelhouse.strip():
            url = installer.torch_build(self.torch_build).index_url or "the default package index"
            box.label(text=f"Torch comes from {url}", icon="URL")
        box.prop(self, "wheelhouse")
        if not self.wheelhouse.strip() and not getattr(bpy.app, "online_access", True):
            box.label(text="Online access is off in Blender: set an Offline Wheel Folder to install", icon="ERROR")
        row = box.row()
        row.operator(ATLASVAE_OT_install_backend.bl_idname, icon="IMPORT")
        row.operator(ATLASVAE_OT_cancel_install.bl_idname, icon="CANCEL")
        row.operator(ATLASVAE_OT_open_install_log.bl_idname, icon="TEXT")
        state = runtime()
        if state is not None and state.install_running:
            box.progress(factor=state.install_progress, type="BAR",
                         text=f"{state.install_phase} ({state.install_progress:.0%})")
        if state is not None and state.install_line:
            box.label(text=state.install_line, icon="SORTTIME" if state.install_running else "INFO")


_installer = installer.Installer()


def install_plan(settings: AddonSettings | None = None) -> installer.InstallPlan:
    """The install the current preferences ask for; InstallError or LocateError say what is wrong."""
    settings = settings or addon_settings()
    requirements = locate.runtime_requirements(locate.requirements_file())
    return installer.plan_install(sys.executable, settings.user_dir, requirements,
                                  installer.torch_build(settings.torch_build), settings.index_url or None,
                                  settings.wheelhouse or None)


def online_refusal(plan: installer.InstallPlan) -> str | None:
    """Why an online install may not run now (Blender's Allow Online Access is off), else None."""
    if plan.offline or getattr(bpy.app, "online_access", True):
        return None
    return ("Blender's 'Allow Online Access' is off (Preferences > System > Network), so AtlasVAE will not "
            "download anything. Turn it on, or install offline: on a machine with internet run "
            "'python build_addon.py --wheelhouse DIR', copy DIR here and set it as 'Offline Wheel Folder'")


def _show_install_progress() -> None:
    """Main thread: copy the installer's progress into the runtime state the preferences draw."""
    state = runtime()
    if state is None:
        return
    progress = _installer.progress()
    state.install_running = progress.running
    state.install_progress = progress.fraction
    state.install_phase = progress.phase
    state.install_line = progress.line[:300]


def _restart_when_free() -> float | None:
    """Timer: stop the backend once no fine-tune runs in it and no request awaits its reply (a sample, a fit,
    an Explorer move), so its next start uses the new environment."""
    state = runtime()
    client = backend_process.backend.client
    if (state is not None and state.job_running()) or (client is not None and client.in_flight()):
        return RESTART_POLL_S
    backend_process.backend.stop()
    return None


def _finish_install(ok: bool, message: str, announce: bool = True) -> None:
    """Main thread: forget cached interpreter checks and stop the backend so its next start uses the new
    environment (its handshake then reports the device the panel shows); while a fine-tune runs in it the
    stop waits until the fine-tune ends, rather than killing it."""
    locate.forget_checks()
    state = runtime()
    if state is not None and state.job_running():
        if ok:
            message += "; the backend switches to it when the running fine-tune ends"
        if not bpy.app.timers.is_registered(_restart_when_free):
            bpy.app.timers.register(_restart_when_free, first_interval=RESTART_POLL_S, persistent=True)
    else:
        backend_process.backend.stop()
    _show_install_progress()
    if state is not None:
        state.install_running = False
        state.install_line = message
    if announce:
        feedback.report("INFO" if ok else "ERROR", message)


def _redraw_preferences() -> None:
    wm = bpy.context.window_manager
    for window in wm.windows if wm is not None else []:
        for area in window.screen.areas if window.screen is not None else []:
            if area.type == "PREFERENCES":
                area.tag_redraw()


def _install_tick() -> float | None:
    _show_install_progress()
    _redraw_preferences()
    if _installer.running:
        return INSTALL_TICK_S
    verdict = _installer.progress().verdict or (False, "Installer stopped without a result")
    _finish_install(*verdict)
    return None


class ATLASVAE_OT_install_backend(bpy.types.Operator):
    """Install torch and the backend's packages into a new Python environment in the user folder (asks first)"""

    bl_idname = "atlasvae.install_backend"
    bl_label = "Install Backend Dependencies"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if _installer.running:
            cls.poll_message_set("An install is already running")
            return False
        return True

    def _plan(self) -> installer.InstallPlan | None:
        try:
            plan = install_plan()
        except (installer.InstallError, locate.LocateError) as exc:
            self.report({"ERROR"}, f"Cannot install the backend: {exc}")
            return None
        refusal = online_refusal(plan)
        if refusal is not None:
            self.report({"ERROR"}, refusal)
            return None
        return plan

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[OperatorReturnItems]:
        if self._plan() is None:
            return {"CANCELLED"}
        wm = context.window_manager
        if wm is None:
            return self.execute(context)
        return wm.invoke_props_dialog(self, width=640, title="Install the AtlasVAE backend?", confirm_text="Install")

    def draw(self, context: bpy.types.Context) -> None:
        try:
            lines = install_plan().summary()
        except (installer.InstallError, locate.LocateError) as exc:
            lines = [str(exc)]
        if self.layout is None:
            return
        column = self.layout.column(align=True)
        for line in lines:
            column.label(text=line)

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        plan = self._plan()
        if plan is None or _installer.running:
            return {"CANCELLED"}
        if bpy.app.background:
            ok, message = _installer.run(plan)
            while not _installer.lines.empty():
                print(_installer.lines.get_nowait())
            _finish_install(ok, message, announce=False)
            self.report({"INFO"} if ok else {"ERROR"}, message)
            return {"FINISHED"} if ok else {"CANCELLED"}
        _installer.start(plan)
        _show_install_progress()
        bpy.app.timers.register(_install_tick, first_interval=INSTALL_TICK_S, persistent=True)
        self.report({"INFO"}, f"Installing the backend environment into {plan.venv} (log: {plan.log})")
        return {"FINISHED"}


class ATLASVAE_OT_cancel_install(bpy.types.Operator):
    """Stop the running install; the half-made environment is removed and a previous one kept"""

    bl_idname = "atlasvae.cancel_install"
    bl_label = "Cancel Install"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if not _installer.running:
            cls.poll_message_set("No install is running")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        _installer.cancel()
        self.report({"INFO"}, "Cancelling the install...")
        return {"FINISHED"}


class ATLASVAE_OT_open_install_log(bpy.types.Operator):
    """Open the backend install log (every command and pip's whole output)"""

    bl_idname = "atlasvae.open_install_log"
    bl_label = "Open Install Log"

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        path = addon_settings().user_dir / "logs" / installer.LOG_NAME
        if not path.is_file():
            self.report({"ERROR"}, f"No install log yet at {path}: it is written by 'Install Backend Dependencies'")
            return {"CANCELLED"}
        if bpy.app.background:
            self.report({"INFO"}, f"The install log is {path}")
            return {"FINISHED"}
        bpy.ops.wm.path_open(filepath=str(path))
        return {"FINISHED"}


CLASSES = (ATLASVAE_OT_install_backend, ATLASVAE_OT_cancel_install, ATLASVAE_OT_open_install_log,
           AtlasVAEPreferences)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for timer in (_install_tick, _restart_when_free):
        if bpy.app.timers.is_registered(timer):
            bpy.app.timers.unregister(timer)
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
