"""Turning `--device` into a torch device that exists, or one clear sentence."""

from __future__ import annotations

import re

from ...errors import DeviceUnavailable, InvalidOption

_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def check_device_name(name: str) -> str:
    """Syntax only, so a typo is caught before torch is imported."""
    name = name.strip().lower()
    if not _PATTERN.match(name):
        raise InvalidOption(f"Unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps.")
    return name


def resolve_device(name: str) -> str:
    """`auto` picks cuda, then mps, then cpu; an explicit device must exist."""
    import torch

    name = check_device_name(name)
    has_mps = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceUnavailable(
                f"Device {name!r} is not available: this PyTorch sees no CUDA GPU; use --device cpu (or auto)."
            )
        index = int(name.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise DeviceUnavailable(
                f"Device {name!r} is not available: there are {torch.cuda.device_count()} CUDA devices "
                f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})."
            )
    if name == "mps" and not has_mps:
        raise DeviceUnavailable("Device 'mps' is not available on this machine; use --device cpu (or auto).")
    return name


def release_memory(device: str) -> None:
    """Give cached allocator memory back after a model is dropped."""
    import gc

    import torch

    gc.collect()
    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.empty_cache()
    elif device == "mps" and hasattr(torch, "mps"):
        torch.mps.empty_cache()
