"""The kubelet registration socket: its path, stale-socket clean-up and a race-free publish.

Kubelet watches its plugin directory (``/var/lib/kubelet/plugins_registry``, mounted at
``--plugin-registration-path``) and dials every unix socket that appears there, ignoring names
that start with a dot. The Go registrar binds ``<dir>/<driver>-reg.sock`` directly, so kubelet can
see the file a moment before it accepts connections. We bind a dot-prefixed name in the same
directory, start serving, restrict it to ``0700`` and only then ``rename`` it into place: kubelet
gets one CREATE event for a socket that already answers, and the process umask is never touched.
"""

from __future__ import annotations

import contextlib
import os
import stat

from csi_sidecars.csi.lean.server import UnaryServer

REG_SOCKET_SUFFIX = "-reg.sock"
SOCKET_MODE = 0o700
#: Longest unix socket path Linux accepts (sun_path is 108 bytes with the NUL).
MAX_SOCKET_PATH = 107


class SocketFileError(RuntimeError):
    """The registration socket path is unusable: not a socket, or it cannot be removed."""


def registration_socket_path(plugin_registration_path: str, driver_name: str) -> str:
    """The registration socket kubelet dials: ``<plugin-registration-path>/<driver>-reg.sock``."""
    return os.path.join(plugin_registration_path, driver_name + REG_SOCKET_SUFFIX)


def hidden_path(path: str) -> str:
    """The dot-prefixed sibling of ``path`` that kubelet's plugin watcher ignores.

    Normally ``.<name>``; when that would exceed the unix socket path limit (107 bytes) while
    ``path`` itself fits, a short random ``.<hex>.sock`` name is used instead.
    """
    directory, name = os.path.split(path)
    hidden = os.path.join(directory, "." + name)
    if len(os.fsencode(hidden)) > MAX_SOCKET_PATH >= len(os.fsencode(path)):
        # os.urandom rather than secrets: secrets imports hashlib, which maps libcrypto (3 MiB).
        hidden = os.path.join(directory, f".{os.urandom(4).hex()}.sock")
    return hidden


def socket_exists(path: str) -> bool:
    """Whether ``path`` is an existing unix socket.

    Returns:
        False when nothing exists at ``path``.

    Raises:
        SocketFileError: when something that is not a socket is there, or stat fails.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    except OSError as err:
        raise SocketFileError(f"failed to stat the socket {path}: {err.strerror or err}") from err
    if not stat.S_ISSOCK(st.st_mode):
        raise SocketFileError(
            f"file exists in socketPath {path} but it's not a socket "
            f"(mode {stat.filemode(st.st_mode)}); remove it or choose another "
            "--plugin-registration-path"
        )
    return True


def remove_stale_socket(path: str) -> bool:
    """Remove a socket left behind by an earlier run.

    Returns:
        Whether a stale socket was removed.

    Raises:
        SocketFileError: when ``path`` holds something other than a socket or cannot be removed.
    """
    if not socket_exists(path):
        return False
    try:
        os.remove(path)
    except FileNotFoundError:
        return False
    except OSError as err:
        raise SocketFileError(
            f"failed to remove stale socket {path}: {err.strerror or err}"
        ) from err
    return True


def remove_socket(path: str) -> None:
    """Remove ``path`` if present (used on shutdown).

    Raises:
        OSError: when it exists but cannot be removed.
    """
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


async def publish(server: UnaryServer, path: str) -> None:
    """Bind ``server`` to a hidden sibling of ``path``, start it, then move it into place.

    On return ``path`` is a mode-0700 unix socket that is already accepting connections, and
    kubelet never saw a half-ready file. The caller removes ``path`` on shutdown.

    Raises:
        SocketFileError: when the hidden path is not a socket, or binding or renaming fails.
    """
    tmp = hidden_path(path)
    remove_stale_socket(tmp)
    try:
        await server.start_unix(tmp)
    except OSError as err:
        raise SocketFileError(f"failed to listen on socket {tmp}: {err.strerror or err}") from err
    try:
        os.chmod(tmp, SOCKET_MODE)
        os.rename(tmp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise SocketFileError(f"failed to publish socket {path}: {err.strerror or err}") from err
