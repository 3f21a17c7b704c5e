"""runtime.startup.release_freed: the C heap's free pages go back to the kernel."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap

import pytest

from csi_sidecars.runtime import startup

# A fresh interpreter fills its C heap with 120 MB of 2 kB buffers (above the size Python's own
# allocator serves, so they come from malloc), keeps one in fifty (the heap cannot shrink from
# its top) and frees the rest: the resident set stays high until release_freed.
_FRAGMENTED_HEAP = textwrap.dedent(
    """
    from csi_sidecars.runtime import startup

    def rss_mib():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024

    blocks = [bytes(2000) + bytes([i % 256]) for i in range(60000)]
    kept = blocks[::50]
    del blocks
    before = rss_mib()
    released = startup.release_freed()
    print(released, before, rss_mib(), len(kept))
    """
)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_release_freed_returns_free_heap_pages() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _FRAGMENTED_HEAP], capture_output=True, text=True, check=True
    ).stdout.split()
    released, before, after = out[0], float(out[1]), float(out[2])
    assert released == "True"
    assert before - after > 60, f"RSS {before:.1f} -> {after:.1f} MiB"


def test_release_freed_without_malloc_trim(monkeypatch: pytest.MonkeyPatch) -> None:
    import ctypes

    class NoTrim:
        def __init__(self, name: object) -> None:
            pass

    monkeypatch.setattr(ctypes, "CDLL", NoTrim)
    startup._malloc_trim.cache_clear()
    try:
        assert startup.release_freed() is False
    finally:
        startup._malloc_trim.cache_clear()
