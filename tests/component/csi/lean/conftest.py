"""The lean stack's tests use the CSI fixtures: short socket path, fake driver, logs."""

from tests.component.csi.conftest import driver, logs, socket_path

__all__ = ["driver", "logs", "socket_path"]
