"""Choosing the torch device a run uses. Imports torch only when a device is resolved, so that
the command line can name the choices without waiting for torch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._core import ArgumentError

if TYPE_CHECKING:
    import torch

#: What a ``device`` argument may say (besides ``cuda:N``).
DEVICES = ("auto", "cpu", "cuda")

#: torch's intra-op threads per process unless a run says otherwise. One: with torch's default
#: (one per core) a tiny model's steps collapse when other work shares the cores (the demo's
#: training took 3× longer beside two other torch processes), while on idle cores one thread
#: costs little, the other core building the next batch in Rust (BENCHMARKS.md, "Threads").
#: The count changes the floating-point result: a run is reproducible for a given count.
DEFAULT_THREADS = 1


def use_threads(threads: int) -> None:
    """Sets torch's intra-op threads for this process (``torch.set_num_threads``); ArgumentError
    for a count below 1."""
    import torch

    if not (isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1):
        raise ArgumentError(f"`threads` = {threads!r}: expected an integer >= 1")
    torch.set_num_threads(threads)


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
