"""Resolve a device name ("auto", "cpu", "cuda", "cuda:N", "mps") to a torch.device, with clear errors."""

from __future__ import annotations

import torch

from backend.errors import ConfigError
from backend.limits import DEVICE_CHOICES



def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """Pick the device: "auto" tries CUDA, then MPS, then CPU; an unavailable one raises ConfigError."""
    if isinstance(name, torch.device):
        name = str(name)
    text = str(name).strip().lower()
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise ConfigError(f"device {name!r} is not a valid device: use one of "
                          f"{', '.join(DEVICE_CHOICES)} or cuda:N") from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} is not available: this torch {torch.__version__} build has no "
                              f"usable CUDA GPU; use --device cpu or auto")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ConfigError(f"device {name!r} is not available: only {count} CUDA device(s) found")
        return device
    if device.type == "mps":
        if not _mps_available():
            raise ConfigError(f"device {name!r} is not available: Apple MPS needs macOS 12.3+ on Apple "
                              f"silicon and a torch build with MPS; use --device cpu or auto")
        return device
    raise ConfigError(f"device {name!r} is not supported: use one of {', '.join(DEVICE_CHOICES)} or cuda:N")


def describe_device(device: torch.device | str) -> str:
    """A short human label, e.g. "cuda:0 (NVIDIA H100 80GB HBM3)", "mps (Apple GPU)" or "cpu"."""
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    if device.type == "mps":
        return "mps (Apple GPU)"
    return device.type
