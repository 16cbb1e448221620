"""Install the backend's Python environment: a plan (what, where, how big, which torch) and a runner
(a thread running pip with progress, cancel and a log file).

bpy-free and torch-free, so plain pytest drives it; `preferences.py` is its Blender face. An existing
environment is moved aside while a new one is built and restored if the install fails or is cancelled,
so pressing Install never leaves the user with less than they had.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from . import locate

TORCH_INDEX = "https://download.pytorch.org/whl/"
LOG_NAME = "install.log"
PREVIOUS_SUFFIX = ".previous"
KILL_GRACE_S = 5.0


@dataclass(frozen=True)
class TorchBuild:
    """One torch build an artist can choose, with where it comes from and roughly what it costs."""

    key: str
    label: str
    description: str
    index_url: str          # "" = pip's default index
    download_mb: int
    disk_mb: int
    platforms: tuple[str, ...]   # sys.platform values it exists for


TORCH_BUILDS: tuple[TorchBuild, ...] = (
    TorchBuild("cpu", "CPU", "Runs on any machine; no GPU acceleration", TORCH_INDEX + "cpu", 200, 800,
               ("linux", "win32")),
    TorchBuild("cu128", "NVIDIA CUDA 12.8", "NVIDIA GPUs with a driver for CUDA 12.8 or newer",
               TORCH_INDEX + "cu128", 2800, 5500, ("linux", "win32")),
    TorchBuild("cu130", "NVIDIA CUDA 13.0", "NVIDIA GPUs with a driver for CUDA 13.0 or newer",
               TORCH_INDEX + "cu130", 2800, 5500, ("linux", "win32")),
    TorchBuild("mps", "Apple MPS", "Apple-silicon GPU (the standard macOS build)", "", 80, 350, ("darwin",)),
)
# numpy, scipy, trimesh, safetensors, scikit-learn, tqdm, matplotlib, scikit-image, libigl and what they pull in
# (scikit-image with imageio and tifffile: 17 MB of wheels, 35 MB installed; libigl: 14 MB, 16 MB).
OTHER_DOWNLOAD_MB, OTHER_DISK_MB = 160, 530
PIP_PHASES = (("Successfully installed", 1.0), ("Installing collected packages", 0.7),
              ("Downloading", 0.3), ("Processing", 0.3), ("Collecting", 0.1), ("Looking in", 0.05))


class InstallError(RuntimeError):
    """The install cannot start as asked; the message names the setting or path and what to do."""


def builds_for(platform: str = sys.platform) -> list[TorchBuild]:
    """The torch builds offered on `platform` (Linux and Windows: CPU and CUDA; macOS: MPS)."""
    key = "linux" if platform.startswith("linux") else platform
    return [b for b in TORCH_BUILDS if key in b.platforms]


def default_build(platform: str = sys.platform) -> TorchBuild:
    """CPU where CUDA builds exist (small and always works), the MPS build on macOS."""
    return builds_for(platform)[0]


def torch_build(key: str) -> TorchBuild:
    """The build named `key`; InstallError lists the known ones otherwise."""
    for build in TORCH_BUILDS:
        if build.key == key:
            return build
    raise InstallError(f"unknown torch build {key!r}; choose one of {', '.join(b.key for b in TORCH_BUILDS)}")


@dataclass(frozen=True)
class Step:
    """One command of an install, with the words shown while it runs."""

    phase: str
    argv: list[str]


@dataclass(frozen=True)
class InstallPlan:
    """Everything an install will do, decided before anything runs (and shown to the artist first)."""

    base_python: Path
    venv: Path
    torch_requirement: str
    other_requirements: list[str]
    build: TorchBuild
    index_url: str
    wheelhouse: Path | None
    requirements_file: Path
    log: Path

    @property
    def offline(self) -> bool:
        return self.wheelhouse is not None

    def steps(self) -> list[Step]:
        """venv, torch from its index (or the wheel folder), the other packages, then a check import."""
        python = str(locate.venv_python(self.venv))
        pip = [python, "-m", "pip", "install", "--no-input", "--disable-pip-version-check"]
        if self.wheelhouse is not None:
            source = ["--no-index", "--find-links", str(self.wheelhouse)]
            torch_source = source
        else:
            source = []
            torch_source = ["--index-url", self.index_url] if self.index_url else []
        check = ("import sys, torch; mps = getattr(getattr(torch, 'backends', None), 'mps', None); "
                 "device = 'cuda' if torch.cuda.is_available() else "
                 "'mps' if mps is not None and mps.is_available() else 'cpu'; "
                 "print(f'torch {torch.__version__} on Python {sys.version.split()[0]} sees device {device}')")
        return [Step("Creating the environment", [str(self.base_python), "-m", "venv", str(self.venv)]),
                Step(f"Installing {self.torch_requirement} ({self.build.label})", [*pip, *torch_source,
                                                                                  self.torch_requirement]),
                Step("Installing the other packages", [*pip, *source, "-r", str(self.requirements_file)]),
                Step("Checking the environment", [python, "-c", check])]

    def summary(self) -> list[str]:
        """The dialog's lines: what, where, from where, how big, which torch build."""
        names = ", ".join(_name(line) for line in self.other_requirements)
        lines = [f"Installs {self.torch_requirement} ({self.build.label}) and {names}.",
                 f"Into: {self.venv}"]
        if self.wheelhouse is not None:
            lines.append(f"Offline, from the wheel folder {self.wheelhouse}: nothing is downloaded.")
        else:
            where = self.index_url or "the default package index"
            lines.append(f"Downloads torch from {where} and the rest from the default package index:")
            lines.append(f"about {self.build.download_mb + OTHER_DOWNLOAD_MB} MB to download.")
        lines.append(f"About {self.build.disk_mb + OTHER_DISK_MB} MB on disk. Log: {self.log}")
        if self.venv.exists():
            lines.append("The environment already there is kept until the new one works.")
        return lines


def _name(requirement: str) -> str:
    return re.split(r"[=<>!~\[; ]", requirement, maxsplit=1)[0].strip()


def plan_install(base_python: Path | str, user_dir: Path, requirements: list[str], build: TorchBuild,
                 index_url: str | None = None, wheelhouse: Path | str | None = None) -> InstallPlan:
    """Check the inputs and decide every step (writing nothing yet); InstallError names a bad input."""
    torch_lines = [r for r in requirements if _name(r).lower() == "torch"]
    if len(torch_lines) != 1:
        raise InstallError(f"the backend's requirements must name torch exactly once, found {len(torch_lines)}")
    folder: Path | None = None
    if wheelhouse is not None and str(wheelhouse).strip():
        folder = Path(str(wheelhouse).strip()).expanduser()
        if not folder.is_dir():
            raise InstallError(f"Offline wheel folder {folder} does not exist")
        if not any(folder.glob("*.whl")):
            raise InstallError(f"Offline wheel folder {folder} holds no .whl files; make one with "
                               f"'python build_addon.py --wheelhouse {folder}' on a machine with internet")
    url = (build.index_url if index_url is None else index_url).strip()
    if url and not re.match(r"^(https?|file)://", url):
        raise InstallError(f"Package index URL {url!r} must start with https://, http:// or file://")
    user_dir = Path(user_dir)
    others = [r for r in requirements if r not in torch_lines]
    req_file = user_dir / "backend-requirements.txt"
    return InstallPlan(base_python=Path(base_python), venv=locate.user_venv_dir(user_dir),
                       torch_requirement=torch_lines[0], other_requirements=others, build=build, index_url=url,
                       wheelhouse=folder, requirements_file=req_file, log=user_dir / "logs" / LOG_NAME)


@dataclass
class Progress:
    """What the panel shows: overall fraction, the current phase and pip's latest line."""

    fraction: float = 0.0
    phase: str = ""
    line: str = ""
    running: bool = False
    verdict: tuple[bool, str] | None = None


@dataclass
class Installer:
    """Runs a plan on a thread. cancel() stops pip and removes the half-made environment."""

    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    _progress: Progress = field(default_factory=Progress)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _cancel: threading.Event = field(default_factory=threading.Event)
    _proc: subprocess.Popen[str] | None = None
    _thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def progress(self) -> Progress:
        """A copy of the current progress, safe to read from any thread."""
        with self._lock:
            return Progress(**vars(self._progress))

    def start(self, plan: InstallPlan) -> None:
        """Run `plan` on a thread; a second start while one runs is refused."""
        if self.running:
            raise InstallError("an install is already running")
        self._reset()
        self._thread = threading.Thread(target=self.run, args=(plan,), name="atlasvae-install", daemon=True)
        self._thread.start()

    def _reset(self) -> None:
        self._cancel.clear()
        with self._lock:
            self._progress = Progress(running=True, phase="Starting")

    def cancel(self) -> None:
        """Ask the install to stop: the running command is terminated (killed if it lingers)."""
        self._cancel.set()
        with self._lock:
            proc = self._proc
        if proc is not None and proc.poll() is None:
            _signal_group(proc, signal.SIGTERM)

    def wait(self, timeout: float | None = None) -> tuple[bool, str] | None:
        """Wait for a started install; returns its verdict (None while still running)."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.progress().verdict

    def run(self, plan: InstallPlan) -> tuple[bool, str]:
        """Run every step in this thread; returns (ok, message) and keeps it as the verdict."""
        if not self.progress().running:
            self._reset()
        try:
            plan.log.parent.mkdir(parents=True, exist_ok=True)
            plan.requirements_file.write_text("\n".join(plan.other_requirements) + "\n", encoding="utf-8")
        except OSError as exc:
            return self._conclude(False, f"Cannot write into {plan.log.parent.parent}: {exc.strerror or exc}")
        with plan.log.open("a", encoding="utf-8") as log:
            log.write(f"\n=== AtlasVAE backend install {time.strftime('%Y-%m-%d %H:%M:%S')} ===\n")
            for line in plan.summary():
                log.write(f"# {line}\n")
            previous = _set_aside(plan.venv)
            ok, message = self._run_steps(plan, log)
            if ok:
                if previous is not None:
                    shutil.rmtree(previous, ignore_errors=True)
            else:
                shutil.rmtree(plan.venv, ignore_errors=True)
                if previous is not None:
                    previous.rename(plan.venv)
                    message += "; the previous environment was kept"
            log.write(f"=== {'done' if ok else 'stopped'}: {message}\n")
        return self._conclude(ok, message)

    def _conclude(self, ok: bool, message: str) -> tuple[bool, str]:
        with self._lock:
            self._progress.running = False
            self._progress.verdict = (ok, message)
            self._progress.fraction = 1.0 if ok else self._progress.fraction
        return ok, message

    def _run_steps(self, plan: InstallPlan, log: TextIO) -> tuple[bool, str]:
        steps = plan.steps()
        last = ""
        for index, step in enumerate(steps):
            if self._cancel.is_set():
                return False, "Install cancelled"
            self._update(phase=step.phase, fraction=index / len(steps), line="")
            log.write("$ " + " ".join(step.argv) + "\n")
            log.flush()
            try:
                proc = subprocess.Popen(step.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        stdin=subprocess.DEVNULL, bufsize=1, start_new_session=True,
                                        env={**os.environ, "PIP_NO_INPUT": "1"})
            except OSError as exc:
                return False, f"{step.phase}: cannot run {step.argv[0]} ({exc})"
            with self._lock:
                self._proc = proc
            if self._cancel.is_set():
                _signal_group(proc, signal.SIGTERM)
            last = self._pump(proc, log, index, len(steps))
            code = _reap(proc)
            with self._lock:
                self._proc = None
            if self._cancel.is_set():
                return False, "Install cancelled"
            if code != 0:
                return False, f"{step.phase} failed (exit status {code}): {last or 'no output'}; see {plan.log}"
        return True, f"Backend environment installed in {plan.venv}: {last}"

    def _pump(self, proc: subprocess.Popen[str], log: TextIO, index: int, total: int) -> str:
        assert proc.stdout is not None
        last = ""
        for raw in proc.stdout:
            line = raw.rstrip()
            if not line:
                continue
            last = line
            log.write(line + "\n")
            self.lines.put(line)
            within = next((share for prefix, share in PIP_PHASES if line.lstrip().startswith(prefix)), None)
            with self._lock:
                self._progress.line = line
                if within is not None:
                    self._progress.fraction = max(self._progress.fraction, (index + within) / total)
        return last

    def _update(self, **values: object) -> None:
        with self._lock:
            for key, value in values.items():
                setattr(self._progress, key, value)


def _set_aside(venv: Path) -> Path | None:
    """Move an existing environment to <venv>.previous (restoring one a crash left there first)."""
    previous = venv.with_name(venv.name + PREVIOUS_SUFFIX)
    if previous.exists():
        if venv.exists():
            shutil.rmtree(venv)
        previous.rename(venv)
    if not venv.exists():
        return None
    venv.rename(previous)
    return previous


def _signal_group(proc: subprocess.Popen[str], sig: int) -> None:
    try:
        if os.name == "nt":
            proc.terminate()
        else:
            os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError, OSError):
        pass


def _reap(proc: subprocess.Popen[str]) -> int:
    try:
        return proc.wait(timeout=KILL_GRACE_S) if proc.poll() is None else int(proc.returncode)
    except subprocess.TimeoutExpired:
        _signal_group(proc, getattr(signal, "SIGKILL", signal.SIGTERM))
        return proc.wait()
