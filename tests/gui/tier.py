"""`make gui-test`: the add-on in a real Blender window, driven by input events (the real-window tier).

Runs a Debian trixie root with Blender 4.3 (built once with mmdebstrap into ~/.cache/atlasvae-gui/root,
or $ATLASVAE_GUI_ROOT) in a private mount namespace: Xvfb (software OpenGL) gives Blender a window, the
built add-on zip is installed as an extension with Blender's own `extension install-file`, and
scenario.py, run inside that Blender, drives it with simulated input events (mouse moves, clicks, keys
go through Blender's event queue, keymaps and UI handlers as a person's would) and checks the scene,
the Info reports and timings. The backend runs with this repo's .venv (bind-mounted at its own path).
Screenshots and result.json go to out/gui/. Needs root (mount namespaces, chroot); Linux only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PACKAGES = "blender,xvfb,xauth,mesa-utils,libgl1-mesa-dri,xdotool,imagemagick,python3-numpy"
SUITE = "trixie"


def default_root() -> Path:
    return Path(os.environ.get("ATLASVAE_GUI_ROOT") or Path.home() / ".cache" / "atlasvae-gui" / "root")


def ensure_root(root: Path) -> None:
    """Build the Blender root with mmdebstrap unless it is there (about 70 s on a fast link)."""
    if (root / "usr" / "bin" / "blender").is_file():
        return
    if shutil.which("mmdebstrap") is None:
        print("gui-test: installing mmdebstrap (apt-get)", flush=True)
        if subprocess.run(["apt-get", "install", "-y", "mmdebstrap"]).returncode != 0:
            subprocess.run(["apt-get", "update"], check=True)  # a fresh machine may have no package lists yet
            subprocess.run(["apt-get", "install", "-y", "mmdebstrap"], check=True)
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    print(f"gui-test: building the Blender root in {root} (once)", flush=True)
    started = time.monotonic()
    subprocess.run(["mmdebstrap", "--variant=apt", f"--include={PACKAGES}", SUITE, str(tmp)], check=True)
    tmp.rename(root)
    print(f"gui-test: root built in {time.monotonic() - started:.0f} s", flush=True)


def backend_python() -> tuple[Path, list[Path]]:
    """The venv's interpreter and the folders it needs (the venv and its base Python's prefix)."""
    venv = (REPO / ".venv").resolve()
    python = venv / "bin" / "python"
    base = subprocess.run([str(python), "-c", "import sys; print(sys.base_prefix)"], capture_output=True,
                          text=True, check=True).stdout.strip()
    return python, [venv, Path(base).resolve()]


def build_zip(dest: Path) -> Path:
    """The add-on zip exactly as artists get it (build_addon.py)."""
    python = REPO / ".venv" / "bin" / "python"
    subprocess.run([str(python), str(REPO / "build_addon.py"), "--out", str(dest)], check=True, cwd=REPO)
    zips = sorted(dest.glob("atlasvae-*.zip"))
    if not zips:
        raise SystemExit(f"error: build_addon.py wrote no zip into {dest}")
    return zips[-1]


def run_inside(root: Path, out: Path, binds: list[Path], env: dict[str, str], timeout: float) -> int:
    """Run inside.sh in the root, in a private mount namespace (nothing to clean up afterwards)."""
    mounts = ["set -e", "mount --make-rprivate /"]
    for src, dst in [(Path("/proc"), "proc"), (Path("/dev"), "dev"), (Path("/sys"), "sys")]:
        mounts.append(f"mount --rbind {src} {root / dst}")
    mounts.append(f"mount -t tmpfs tmpfs {root / 'tmp'}")
    for path in binds:
        target = root / str(path).lstrip("/")
        mounts.append(f"mkdir -p {target} && mount --bind {path} {target}")
    mounts.append(f"mkdir -p {root / 'gui'} && mount --bind {out} {root / 'gui'}")
    exports = " ".join(f"{k}='{v}'" for k, v in env.items())
    chroot = shutil.which("chroot") or "/usr/sbin/chroot"
    mounts.append(f"exec env -i {exports} {chroot} {root} /bin/sh /gui/inside.sh")
    try:
        return subprocess.run(["unshare", "--mount", "--fork", "sh", "-c", "\n".join(mounts)],
                              timeout=timeout).returncode
    except subprocess.TimeoutExpired:
        print(f"gui-test: gave up after {timeout:.0f} s", flush=True)
        return 124


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "out" / "gui", help="screenshots and result.json")
    parser.add_argument("--root", type=Path, default=default_root(), help="the Blender root (built if missing)")
    parser.add_argument("--timeout", type=float, default=1500.0, help="seconds for the whole run inside")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("error: make gui-test needs root (a mount namespace and chroot)", file=sys.stderr)
        return 2
    started = time.monotonic()
    ensure_root(args.root.resolve())
    out = args.out.resolve()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    zip_path = build_zip(out / "dist")
    shutil.copy(HERE / "scenario.py", out / "scenario.py")
    shutil.copy(HERE / "inside.sh", out / "inside.sh")
    python, binds = backend_python()
    env = {"HOME": "/gui/home", "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
           "ATLASVAE_PYTHON": str(python), "ATLASVAE_ZIP": f"/gui/dist/{zip_path.name}", "GUI_OUT": "/gui",
           "ATLASVAE_CACHE": "/gui/cache"}
    rc = run_inside(args.root.resolve(), out, binds, env, args.timeout)
    result_file = out / "result.json"
    if not result_file.is_file():
        print(f"error: no {result_file} (inside.sh exit {rc}); see {out}/blender.log", file=sys.stderr)
        return 1
    result = json.loads(result_file.read_text())
    failed = [c for c in result["checks"] if not c["ok"]]
    for c in result["checks"]:
        print(f"{'ok  ' if c['ok'] else 'FAIL'} {c['name']}" + (f": {c['detail']}" if c["detail"] else ""))
    for key, value in result.get("timings", {}).items():
        print(f"time {key}: {value:.2f} s")
    for line in result.get("notes", []):
        print(f"note {line}")
    if result.get("error"):
        print(f"scenario error: {result['error']}")
    print(f"screenshots, result.json and logs in {out}; {time.monotonic() - started:.0f} s in all")
    print(f"gui-test: {len(result['checks']) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed or result.get("error") or rc else 0


if __name__ == "__main__":
    sys.exit(main())
