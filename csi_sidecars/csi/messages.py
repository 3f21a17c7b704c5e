"""The generated CSI and plugin-registration modules, as everything outside ``csi/`` reaches them.

The rule (README, "Architecture"; enforced by ``tests/unit/test_layers.py``): only the ``csi``
package imports ``csi_sidecars.csi.gen``. Roles, tools and the playground import the message
modules from here: ``from csi_sidecars.csi.messages import csi_pb2``. The ``*_grpc`` modules are
re-exported for servers (the playground driver, the registrar's registration service, test fakes)
and for stub type annotations; clients get their stubs from
:class:`~csi_sidecars.csi.connection.Connection`, which is the only place channels are built.
"""

from __future__ import annotations

from csi_sidecars.csi.gen import (
    csi_pb2,
    csi_pb2_grpc,
    pluginregistration_pb2,
    pluginregistration_pb2_grpc,
)

__all__ = ["csi_pb2", "csi_pb2_grpc", "pluginregistration_pb2", "pluginregistration_pb2_grpc"]
