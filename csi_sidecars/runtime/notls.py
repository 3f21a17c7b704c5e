"""Keep ``ssl`` (and OpenSSL with it) out of processes that never speak TLS.

asyncio imports ``ssl`` when it is first imported, for its TLS transports. The node roles only
talk to unix sockets and serve plain HTTP probes, so for them that is about 4.4 MiB of resident
memory (libssl and libcrypto mapped in) and some milliseconds of start-up for nothing. Python
supports interpreters built without ``ssl``: asyncio then simply has no TLS. :func:`forgo_tls`
turns this process into one of those, and must run before anything imports asyncio; the command
line does it for the node roles (``cli``, ``run``). A later ``import ssl`` fails loudly with
``import of ssl halted``, never silently.
"""

from __future__ import annotations

import sys


def forgo_tls() -> bool:
    """Make ``import ssl`` fail from now on, if nothing has imported ssl or asyncio yet.

    Returns:
        Whether ssl is now blocked (False when it was too late, e.g. inside a test process).
    """
    if "ssl" in sys.modules or "asyncio" in sys.modules:
        return False
    sys.modules["ssl"] = None  # type: ignore[assignment]
    return True
