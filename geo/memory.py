"""A worker's resident memory: allocator settings, and freed memory handed back.

* glibc gives each thread that allocates its own malloc arena (up to 8 per core): the
  threadpools' threads each keep a partly used heap of their own. Four arenas keep ~5 MB
  less resident per worker after a load (PostGIS, 100k interventions: 149-151 MB against
  155), with no throughput change that the shared 2-core test machine could tell apart
  from its noise (:func:`limit_malloc_arenas`). Two saved as much but averaged fewer
  requests per second in those runs.
* pyarrow (batch lookups, uploads) allocates from mimalloc by default, which keeps ~15 MB
  reserved once used; its system pool (glibc) does not, and is no slower for the batch
  (:func:`tune_process` sets ``ARROW_DEFAULT_MEMORY_POOL`` before pyarrow is imported;
  16 MB less after a first 10k-point batch).
* glibc's ``free`` keeps what it frees for the process's next ``malloc``: after a burst of
  short-lived objects (the nearest-comune index's build) the resident size would stay at its
  peak; :func:`release_freed_memory` returns the free pages to the system.

Elsewhere than glibc (macOS, musl) there is nothing to call and nothing is done.
"""

from __future__ import annotations

import ctypes
import functools
import os
from typing import Any

#: ``mallopt`` parameter of the arena limit (glibc's malloc.h).
_M_ARENA_MAX = -8
#: Arenas per process set by :func:`tune_process` (unless ``MALLOC_ARENA_MAX`` is set).
ARENAS = 4


@functools.cache
def _libc() -> Any | None:
    """The process's own symbols (glibc's malloc functions, if glibc is the allocator)."""
    try:
        libc = ctypes.CDLL(None)
        libc.malloc_trim  # noqa: B018 - glibc only: AttributeError elsewhere
        libc.mallopt  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def release_freed_memory() -> bool:
    """Return the heap's free pages to the system (glibc); whether it could be asked."""
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """At most ``arenas`` glibc malloc arenas for the threads created from now on (what
    ``MALLOC_ARENA_MAX`` sets at start-up); whether glibc took it."""
    libc = _libc()
    return libc is not None and bool(libc.mallopt(_M_ARENA_MAX, int(arenas)))


def tune_process() -> None:
    """Allocator settings of a serving process and of the worker processes it starts: at
    most ``MALLOC_ARENA_MAX`` arenas (default :data:`ARENAS`), and pyarrow on the system
    allocator (``ARROW_DEFAULT_MEMORY_POOL``, default ``system``). Values already in the
    environment are kept. Call it before the threadpool starts and before pyarrow loads."""
    os.environ.setdefault("MALLOC_ARENA_MAX", str(ARENAS))  # read by workers at their start
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")  # read when pyarrow loads
    try:
        arenas = int(os.environ["MALLOC_ARENA_MAX"])
    except ValueError:
        return
    if arenas > 0:
        limit_malloc_arenas(arenas)  # this process: glibc read the variable before we set it
