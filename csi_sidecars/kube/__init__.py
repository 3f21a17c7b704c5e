"""The Kubernetes layer shared by the controller roles.

* :mod:`.resources` and :mod:`.port`: resource names, API errors and the narrow async port
  (:class:`~.port.KubePort`) roles talk through, with raw dicts in and out.
* :mod:`.client` (real, over aiohttp, throttled by :mod:`.ratelimit`, configured by
  :mod:`.config`) and :mod:`.fake` (in memory, for component tests) implement the port.
* :mod:`.patch`: merge / conflict-safe JSON finalizer patches, status, server-side apply, retry
  on conflict.
* :mod:`.informer` and :mod:`.store`: list-then-watch cache of slim objects with indexes.
* :mod:`.workqueue`: keyed work queue with per-key back-off and metrics.
* :mod:`.leaderelection` and :mod:`.events`: Lease election and the event recorder.
* :mod:`.options`: the shared ``--kubeconfig`` / ``--kube-api-*`` / ``--leader-election*`` flags.
* :mod:`.clock`: real and fake time.
"""
