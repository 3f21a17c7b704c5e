"""The CSI layer shared by every role: protos, the driver connection, RPC helpers, metrics, logs.

Only this package imports the generated protobuf modules (``csi_sidecars.csi.gen``); everything
else imports them from ``csi_sidecars.csi.messages`` (a test enforces it).

What to import from where:

* ``csi_sidecars.csi.messages``: the generated code (``csi_pb2``, ``csi_pb2_grpc``,
  ``pluginregistration_pb2``, ``pluginregistration_pb2_grpc``), from ``proto/csi.proto``
  (CSI v1.12.0) and ``proto/pluginregistration.proto`` (kubelet plugin registration v1).
  Regenerate with ``scripts/gen-protos.sh``; CI runs ``scripts/gen-protos.sh --check``.
* ``csi_sidecars.csi.connection``:
  ``await connect(address, *, timeout=30.0, metrics=None, on_lost=LossPolicy.RECONNECT,
  max_grpc_log_length=-1, exit_action=..., termination_log="/dev/termination-log")
  -> Connection``. ``Connection`` has the stubs ``identity``, ``controller``,
  ``group_controller``, ``node``, ``snapshot_metadata`` (call them with ``timeout=`` seconds),
  ``ready``, ``lost`` (an ``asyncio.Event``) and ``await close()``. ``LossPolicy.EXIT`` for
  controller roles, ``LossPolicy.RECONNECT`` for node roles. ``ConnectTimeoutError`` when the
  driver never became reachable. ``normalize_address(address)``.
* ``csi_sidecars.csi.rpc``: ``get_plugin_info``, ``get_driver_name`` (``CSIError("driver name is
  empty")``), ``probe``, ``probe_until_ready(conn, timeout, *, overall_timeout=None)``,
  ``get_plugin_capabilities``, ``get_controller_capabilities``, ``get_node_capabilities``,
  ``get_group_controller_capabilities``, ``node_get_info``; all take ``(conn, timeout=None)``.
* ``csi_sidecars.csi.metrics``: ``CSIMetrics(registry=None, *, subsystem="csi_sidecar",
  with_migration=False, process_start_time=True)`` with ``.registry``, ``.set_driver_name(name)``,
  ``.record(method, err, seconds)``, ``.render() -> (body, content_type)``; ``migrated(flag)``
  context manager for the ``migrated`` label.
* ``csi_sidecars.csi.sanitize``: ``strip_secrets(msg) -> str`` (one-line JSON, ``csi_secret``
  fields replaced by ``***stripped***``), ``Stripped(msg)`` (lazy), ``to_dict(msg)``.
* ``csi_sidecars.csi.codes``: ``go_code_name(code)`` (``DEADLINE_EXCEEDED`` ->
  ``DeadlineExceeded``), ``status_label(err)``, ``error_code(err)``, ``is_grpc_code(err, *codes)``,
  ``format_error(err)`` (``rpc error: code = NotFound desc = ...``).
* ``csi_sidecars.csi.lean``: the node roles' stack without grpcio, prometheus_client or ssl (a
  unary client on our HTTP/2 framing, a grpclib server, a prometheus-free CSI histogram); see its
  package docstring. Controller roles use ``connection`` above.
* ``csi_sidecars.csi.interceptors``: ``LogInterceptor``, ``MetricsInterceptor`` (installed by
  ``connect``), ``cap_log(text, max_length)``.
"""
