"""Choosing the torch device a run uses. Imports torch only when a device is resolved, so that
the command line can name the choices without waiting for torch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._core import ArgumentError

if TYPE_CHECKING:
    import torch

#: What a ``device`` argument may say (besides ``cuda:N``).
DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str | torch.device, index: int = 0) -> torch.device:
    """``"auto"`` (CUDA when there is one), ``"cpu"``, ``"cuda"``, ``"cuda:1"``… → a torch device;
    a bare ``"cuda"`` means GPU ``index`` (a process's local rank). Raises ArgumentError for an
    unknown device, or when CUDA is asked for but unavailable."""
    import torch

    if str(device) == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(device)
    except RuntimeError:
        raise ArgumentError(f"`device` must be one of {', '.join(DEVICES)}, not {device!r}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ArgumentError(f"`device` {device} was asked for, but no CUDA device is available (use cpu)")
        if device.index is None:
            device = torch.device("cuda", index)
    return device
