"""The lean gRPC stack of the node roles, with the same generated protobuf messages as grpcio.

livenessprobe and node-driver-registrar make a handful of unary calls (Identity ``Probe`` and
``GetPluginInfo``; kubelet's ``GetInfo``) and serve kubelet's ``Registration`` service on a unix
socket. grpcio's C core costs them about 9 MiB of RSS and 0.05 s of start-up, more than the rest
of the role together. So their client is our own HTTP/2 framing for unary calls
(:mod:`~csi_sidecars.csi.lean.wire`: one write per request, a third of the CPU of a general
HTTP/2 stack per livenessprobe check), and their server is grpclib (pure asyncio HTTP/2).
Controller roles keep :mod:`csi_sidecars.csi.connection` (grpcio), whose API this package does
not change. Nothing here imports ``grpc``, ``prometheus_client`` or ``ssl``:

* :mod:`~csi_sidecars.csi.lean.address`: ``parse_target(address) -> Target``.
* :mod:`~csi_sidecars.csi.lean.status`: ``RpcError(code, details)`` (``str()`` is Go's
  ``rpc error: code = X desc = Y``), ``go_name(code)``, the code numbers.
* :mod:`~csi_sidecars.csi.lean.client`: ``await dial(address, *, timeout, metrics=None)
  -> LeanConnection`` (``call(method, request, reply_type, timeout=)``, ``with_metrics(m)``,
  ``close()``), ``DialTimeoutError``.
* :mod:`~csi_sidecars.csi.lean.identity`: ``get_plugin_info``, ``get_driver_name``, ``probe``.
* :mod:`~csi_sidecars.csi.lean.link`: ``DriverLink(address)``: one start-up connection shared
  by the roles of a process, each waiting with its own timeout.
* :mod:`~csi_sidecars.csi.lean.server`: ``Service(name).unary(...)``, ``UnaryServer`` (grpclib).
* :mod:`~csi_sidecars.csi.lean.metrics`: ``OperationMetrics`` (the CSI call histogram).
"""
