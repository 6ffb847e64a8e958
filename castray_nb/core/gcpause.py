"""Pausing CPython's cyclic garbage collector around one big burst of allocations.

Reading a 10,000-node cluster turns a ~5 MB reply into ~200,000 objects at once. With the
collector on, the collections that this burst sets off promote those short-lived objects
to the oldest generation, and every few reads that sets off a full collection of the whole
process (a kernel holds hundreds of thousands of objects): measured here, 60-120 ms with the
GIL held, so the kernel's own thread stood still that long. With the collector paused for
the burst (tens of milliseconds of CPU work, never a network wait), the short-lived objects
are freed by reference counting before any collection sees them.

The collector is process-wide: the pause is counted, so overlapping reads in several
threads end it once, and a collector that the user had turned off stays off.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0
_we_disabled = False


@contextmanager
def gc_paused(enabled: bool = True) -> Iterator[None]:
    """Pause the cyclic collector for the ``with`` block (a no-op when ``enabled`` is false)."""
    global _depth, _we_disabled
    if not enabled:
        yield
        return
    with _lock:
        if _depth == 0 and gc.isenabled():
            gc.disable()
            _we_disabled = True
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _we_disabled:
                _we_disabled = False
                gc.enable()
