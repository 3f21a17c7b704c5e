"""The chaos harness: a mixed, concurrent storage workload under seeded faults, then invariants.

``bench/chaos.py`` is the command line; the parts live here, one concern per module:

* :mod:`chaos.roles`: the sidecar roles as pluggable parts (a role takes part when its
  ``csi-sidecars`` subcommand exists, or its Go binary for ``--target go``) and the workload
  features each one enables;
* :mod:`chaos.api`: a small retrying API client (the API server restarts under the workload);
* :mod:`chaos.testbed`: the control plane, the driver, two replicas of every controller role,
  each behind its own partitionable proxy, and a supervisor that restarts what exits (kubelet's
  part);
* :mod:`chaos.workload`: claims (Immediate, WaitForFirstConsumer), pods, snapshots, restores,
  expansions and VolumeAttributesClass changes, with the expected end state of each object;
* :mod:`chaos.faults`: the seeded fault schedule and how each fault is injected;
* :mod:`chaos.invariants`: pure checks of the end state (no leak, no loss, nothing stuck, ...);
* :mod:`chaos.report`: the table, the JSON line and the replay command;
* :mod:`chaos.run`: one run, phase by phase; :mod:`chaos.compare`: ours and Go side by side.

Every random choice comes from a stream named after the seed and the part that draws it, so the
same seed gives the same claims, pods and faults whichever roles take part.
"""
