"""Decoder faults on demand inside Ray workers, for tests/test_ray_engine.py.

The Ray engine's claims about crashes and hangs (a decoder that segfaults gives a ``crashed``
row, one that hangs a ``timeout`` row, a segfault that kills a whole actor with
``workers=0`` still gives every video exactly one row) can only be checked with a decoder
that really crashes or hangs, in the processes where Ray runs it: actors are started by Ray,
not by the test, so a ``monkeypatch`` in the test process never reaches them. Ray runs
:func:`install` in each of its worker processes when the test cluster names it as
``runtime_env={"worker_process_setup_hook": "ray_faults.install"}`` (with this folder on the
workers' ``PYTHONPATH``); decoding worker processes are forked from an actor and inherit the
patch.

Files are chosen by name, so a test decides which videos fail by copying a good video under
a name: one whose basename contains ``segfault`` kills its decoding process with SIGSEGV,
one containing ``hang`` sleeps for an hour; every other file decodes normally.

This is not a test file (no ``test_`` prefix): pytest does not collect it.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

#: A file whose basename contains this crashes its decoder (SIGSEGV).
SEGFAULT = "segfault"
#: A file whose basename contains this hangs its decoder (longer than any test timeout).
HANG = "hang"
#: How long a hanging decoder sleeps (seconds).
HANG_S = 3600.0


def install() -> None:
    """Wrap ``vmae_cli.views.decode_video`` and ``decode_windows`` (``--segments``) with the
    faults above (idempotent).

    ``views`` imported them by name, so the names are replaced in ``views`` itself:
    patching ``vmae_cli.decoding`` would not reach the caller.
    """
    from vmae_cli import views

    for name in ("decode_video", "decode_windows"):
        original = getattr(views, name)
        if not getattr(original, "_ray_faults", False):
            setattr(views, name, _faulty(original))


def _faulty(original: Any) -> Any:
    def decode(path: str, *args: Any, **kwargs: Any) -> Any:
        name = os.path.basename(path)
        if SEGFAULT in name:
            os.kill(os.getpid(), signal.SIGSEGV)
        if HANG in name:
            time.sleep(HANG_S)
        return original(path, *args, **kwargs)

    decode._ray_faults = True  # type: ignore[attr-defined]
    return decode
