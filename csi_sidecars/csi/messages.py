"""The generated CSI and plugin-registration modules, as everything outside ``csi/`` reaches them.

The rule (README, "Architecture"; enforced by ``tests/unit/test_layers.py``): only the ``csi``
package imports ``csi_sidecars.csi.gen``. Roles, tools and the playground import the message
modules from here: ``from csi_sidecars.csi.messages import csi_pb2``. The ``*_grpc`` modules are
re-exported for servers (the playground driver, test fakes) and for stub type annotations;
clients get their stubs from :class:`~csi_sidecars.csi.connection.Connection`, which is the only
place grpcio channels are built.

Each module is imported on first use: a ``*_grpc`` module imports grpcio, which the node roles
(on :mod:`csi_sidecars.csi.lean`) never load, so ``from ... import csi_pb2`` must not pull it in.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from csi_sidecars.csi.gen import (
        csi_pb2,
        csi_pb2_grpc,
        pluginregistration_pb2,
        pluginregistration_pb2_grpc,
    )

__all__ = ["csi_pb2", "csi_pb2_grpc", "pluginregistration_pb2", "pluginregistration_pb2_grpc"]


def __getattr__(name: str) -> ModuleType:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"csi_sidecars.csi.gen.{name}")
    globals()[name] = module
    return module
