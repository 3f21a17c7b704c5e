"""ManagedProcess and poll_until: children stop for good, polling honours its deadline."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from csi_sidecars.playground.process import ManagedProcess, free_port, poll_until


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); check its state
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


async def test_stop_kills_the_whole_group_even_when_sigterm_is_ignored(tmp_path: Path) -> None:
    child_pid_file = tmp_path / "child.pid"
    script = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "p = subprocess.Popen([sys.executable, '-c', "
        "'import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)'])\n"
        f"open({str(child_pid_file)!r}, 'w').write(str(p.pid))\n"
        "print('started', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = ManagedProcess("stubborn", [sys.executable, "-c", script], tmp_path / "log")
    await proc.start()

    async def child_started() -> bool:
        return child_pid_file.exists() and child_pid_file.read_text() != ""

    await poll_until(child_started, 20, "grandchild to start")
    grandchild = int(child_pid_file.read_text())
    began = time.monotonic()
    status = await proc.stop(timeout=0.5)
    assert status == -9
    assert time.monotonic() - began < 10
    assert not proc.running

    async def gone() -> bool:
        return not _alive(grandchild)

    await poll_until(gone, 10, "grandchild to die")
    assert "started" in proc.log_tail()


async def test_restart_appends_to_the_log(tmp_path: Path) -> None:
    proc = ManagedProcess("echo", [sys.executable, "-c", "print('hel' + 'lo')"], tmp_path / "l.log")
    await proc.start()
    assert await proc.wait(10) == 0
    await proc.start()
    assert await proc.wait(10) == 0
    assert proc.log_tail().count("hello") == 2
    assert await proc.stop() == 0


async def test_poll_until_returns_value_and_times_out() -> None:
    calls = []

    async def third_time() -> str | None:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("not yet")
        return "ok"

    assert await poll_until(third_time, 5, "x", interval=0.01) == "ok"

    async def never() -> bool:
        raise ConnectionError("refused")

    with pytest.raises(TimeoutError, match="waiting for the moon") as info:
        await poll_until(never, 0.2, "the moon", interval=0.01)
    assert isinstance(info.value.__cause__, ConnectionError)

    async def fatal() -> bool:
        raise KeyError("boom")

    began = time.monotonic()
    with pytest.raises(KeyError):
        await poll_until(fatal, 5, "x", fatal=(KeyError,))
    assert time.monotonic() - began < 1


def test_free_port_is_bindable() -> None:
    import socket

    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_free_port_is_outside_the_ephemeral_range_and_bindable() -> None:
    import socket

    from csi_sidecars.playground.process import LISTEN_PORTS_FROM, ephemeral_ports, free_port

    low, high = ephemeral_ports()
    ports = {free_port() for _ in range(20)}
    for port in ports:
        if low - LISTEN_PORTS_FROM >= 1000:
            assert LISTEN_PORTS_FROM <= port < low, (port, low, high)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", port))
    assert len(ports) > 1  # picked at random, not one fixed port


def test_free_port_never_repeats_in_a_process_even_with_a_seeded_global_random() -> None:
    import random

    from csi_sidecars.playground.process import free_port

    random.seed(30)
    first = [free_port() for _ in range(50)]
    random.seed(30)
    second = [free_port() for _ in range(50)]
    assert len(set(first + second)) == 100
