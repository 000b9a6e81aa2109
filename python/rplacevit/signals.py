"""SIGTERM (what ``kill``, ``timeout``, ``docker stop`` and Slurm send) handled like Ctrl-C: a
long command stops at its next check and leaves nothing that looks complete."""

from __future__ import annotations

import signal


class Terminated(KeyboardInterrupt):
    """Raised by the SIGTERM handler of :func:`stop_on_sigterm`; everything that cleans up after
    Ctrl-C cleans up after it."""


def raise_terminated(signum, frame):
    raise Terminated()


def stop_on_sigterm():
    """Makes SIGTERM raise :class:`Terminated` in the main thread (the command line does this;
    a library should not change a program's signal handlers by itself); returns the handler it
    replaces."""
    return signal.signal(signal.SIGTERM, raise_terminated)
