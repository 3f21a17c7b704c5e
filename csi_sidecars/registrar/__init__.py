"""The registrar roles: node-driver-registrar (``node*``) and cluster-driver-registrar.

``node`` (flags and start-up), ``node_socket`` (registration socket), ``node_service`` (kubelet's
Registration service), ``node_health`` (``/healthz`` checks).
"""
