# mypy: disable-error-code="valid-type"
"""Add-on preferences (interpreter, device, user folder, start on load) and the operator that
installs the backend's Python environment (a venv plus pip) without freezing Blender.
"""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import bpy
from bpy.props import BoolProperty, EnumProperty, StringProperty

from . import jobs
from .bpyfree import locate
from .runtime import runtime

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems

DEVICES = (("auto", "Auto", "CUDA if available, then Apple MPS, then CPU"),
           ("cpu", "CPU", "Always run on the CPU"),
           ("cuda", "CUDA", "NVIDIA GPU"),
           ("mps", "MPS", "Apple-silicon GPU"))
INSTALL_TICK_S = 0.25


@dataclass(frozen=True)
class AddonSettings:
    """Preference values with defaults filled in, usable even when preferences are not registered."""

    python_path: str
    device: str
    user_dir: Path
    start_on_load: bool


def default_user_dir() -> Path:
    """The extension's own user folder when installed as an extension, else a per-user config folder."""
    try:
        return Path(bpy.utils.extension_path_user(__package__ or "", create=True))
    except (ValueError, AttributeError, OSError):
        return locate.fallback_user_dir()


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
                         start_on_load=bool(prefs.start_on_load))


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

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "python_path")
        layout.prop(self, "device")
        layout.prop(self, "user_dir")
        layout.label(text=f"In use: {addon_settings().user_dir}", icon="FILE_FOLDER")
        layout.prop(self, "start_on_load")
        row = layout.row()
        row.operator(ATLASVAE_OT_install_backend.bl_idname, icon="CONSOLE")
        wm = context.window_manager
        state = getattr(wm, "atlasvae_runtime", None)
        if state is not None and (state.install_running or state.install_line):
            layout.label(text=state.install_line or "Installing...",
                         icon="SORTTIME" if state.install_running else "INFO")


class _Installer:
    """Runs the install commands on a thread; output lines and the verdict come back by queue."""

    def __init__(self) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.verdict: tuple[bool, str] | None = None
        self.thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def start(self, commands: list[list[str]]) -> None:
        self.verdict = None
        self.thread = threading.Thread(target=self.run, args=(commands,), name="atlasvae-install", daemon=True)
        self.thread.start()

    def run(self, commands: list[list[str]]) -> tuple[bool, str]:
        """Run every command in order; stop at the first failure, naming it and its last output."""
        last = ""
        for command in commands:
            self.lines.put("$ " + " ".join(command))
            try:
                proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        stdin=subprocess.DEVNULL, bufsize=1)
            except OSError as exc:
                self.verdict = (False, f"Cannot run {command[0]}: {exc}")
                return self.verdict
            assert proc.stdout is not None
            for line in proc.stdout:
                line = line.rstrip()
                if line:
                    last = line
                    self.lines.put(line)
            code = proc.wait()
            if code != 0:
                self.verdict = (False, f"'{' '.join(command[:4])} ...' failed (exit status {code}): {last}")
                return self.verdict
        self.verdict = (True, "Backend environment installed")
        return self.verdict


_installer = _Installer()


def _finish_install(ok: bool, message: str, announce: bool = True) -> None:
    """Main thread: forget cached interpreter checks and restart the backend on the new environment."""
    locate.forget_checks()
    jobs.backend.stop()
    state = runtime()
    if state is not None:
        state.install_running = False
        state.install_line = message
    if announce:
        jobs.report("INFO" if ok else "ERROR", message)


def _install_tick() -> float | None:
    state = runtime()
    last = None
    while True:
        try:
            last = _installer.lines.get_nowait()
        except queue.Empty:
            break
    if state is not None and last is not None:
        state.install_line = last[:200]
    if _installer.running:
        return INSTALL_TICK_S
    verdict = _installer.verdict or (False, "Installer stopped without a result")
    _finish_install(*verdict)
    return None


class ATLASVAE_OT_install_backend(bpy.types.Operator):
    """Create a Python environment in the user folder and install torch and the backend's packages"""

    bl_idname = "atlasvae.install_backend"
    bl_label = "Install Backend Dependencies"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if _installer.running:
            cls.poll_message_set("An install is already running")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        settings = addon_settings()
        try:
            source = locate.requirements_file()
            lines = locate.runtime_requirements(source)
            settings.user_dir.mkdir(parents=True, exist_ok=True)
            requirements = settings.user_dir / "backend-requirements.txt"
            requirements.write_text("\n".join(lines) + "\n", encoding="utf-8")
        except (locate.LocateError, OSError) as exc:
            self.report({"ERROR"}, f"Cannot prepare the install: {exc}")
            return {"CANCELLED"}
        commands = locate.install_commands(sys.executable, settings.user_dir, requirements)
        state = runtime()
        if bpy.app.background:
            ok, message = _installer.run(commands)
            while not _installer.lines.empty():
                print(_installer.lines.get_nowait())
            _finish_install(ok, message, announce=False)
            if not ok:
                self.report({"ERROR"}, message)
                return {"CANCELLED"}
            self.report({"INFO"}, message)
            return {"FINISHED"}
        _installer.start(commands)
        if state is not None:
            state.install_running = True
            state.install_line = "Starting install..."
        bpy.app.timers.register(_install_tick, first_interval=INSTALL_TICK_S, persistent=True)
        self.report({"INFO"}, f"Installing the backend environment into {locate.user_venv_dir(settings.user_dir)}")
        return {"FINISHED"}


CLASSES = (ATLASVAE_OT_install_backend, AtlasVAEPreferences)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    if bpy.app.timers.is_registered(_install_tick):
        bpy.app.timers.unregister(_install_tick)
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
