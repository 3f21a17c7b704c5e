"""Start-up economies of the node roles: no ``ssl``, no garbage collection while importing.

* :func:`forgo_tls`: asyncio imports ``ssl`` when it is first imported, for its TLS transports.
  The node roles only talk to unix sockets and serve plain HTTP probes, so for them that is about
  4.4 MiB of resident memory (libssl and libcrypto mapped in) and some milliseconds for nothing.
  Python supports interpreters built without ``ssl``: asyncio then simply has no TLS. This turns
  the process into one of those; it must run before anything imports asyncio. A later
  ``import ssl`` fails loudly with ``import of ssl halted``, never silently.
* :func:`pause_gc` / :func:`resume_gc` / :func:`settle`: importing creates some 35,000 objects
  and no garbage worth a collection, yet the collector runs a few times (about 7 ms of a 80 ms
  import). The collector is off from the command line until the event loop starts; once the role
  is up, :func:`settle` collects once and freezes what survived (modules, classes, the role's
  long-lived state) so later collections no longer walk it.
* :func:`release_freed`: what start-up freed (the decoded pages of the initial lists, import-time
  temporaries) stays resident in the C allocator's free lists; glibc hands whole free pages back to
  the kernel only on request. Called once after a controller role's caches synced (10,000 PVs
  and 10,000 claims: 8 MiB less idle RSS). Not in the node roles: they free little, and the
  ctypes import would delay their first answer by a few milliseconds for nothing.

The command line applies the first three to the node roles only (``cli``, ``run``).
"""

from __future__ import annotations

import functools
import gc
import sys
from collections.abc import Callable

_settled = False


def forgo_tls() -> bool:
    """Make ``import ssl`` fail from now on, if nothing has imported ssl or asyncio yet.

    Returns:
        Whether ssl is now blocked (False when it was too late, e.g. inside a test process).
    """
    if "ssl" in sys.modules or "asyncio" in sys.modules:
        return False
    sys.modules["ssl"] = None  # type: ignore[assignment]
    return True


def pause_gc() -> None:
    """Turn the garbage collector off until :func:`resume_gc` (for the imports of a role)."""
    gc.disable()


def resume_gc() -> None:
    """Turn the garbage collector back on if :func:`pause_gc` turned it off."""
    if not gc.isenabled():
        gc.enable()


def settle() -> None:
    """The role is up: collect once, then freeze the survivors out of later collections.

    Idempotent: in the node bundle every role calls it, only the first call does the work.
    """
    global _settled
    if _settled:
        return
    _settled = True
    gc.collect()
    gc.freeze()


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    import ctypes  # here: only this needs it (about 3 ms to import)

    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim  # the interpreter's C library
    except (OSError, AttributeError):
        return None
    return trim


def release_freed() -> bool:
    """Return the C heap's free pages to the kernel (glibc ``malloc_trim``); False if unavailable.

    Only pages no live allocation uses are given back, so it never costs later allocations more
    than a page fault each; other C libraries (musl) lack the call and nothing happens.
    """
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
