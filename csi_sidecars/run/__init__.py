"""``csi-sidecars run --roles A,B``: several roles in one process (ours; Go has nothing like it).

The node bundle (``--roles node-driver-registrar,livenessprobe``) runs a DaemonSet's two sidecars
in one container: one interpreter instead of two, one driver connection for the start-up calls,
one HTTP server when both roles name the same endpoint. The controller bundle (``--roles
provisioner,attacher,resizer,snapshotter``) runs a controller Deployment's sidecars in one
event loop: one driver connection, one list+watch per shared resource, a Lease per role. How it
is put together:

* :mod:`~csi_sidecars.run.registry`: which roles exist for ``run``, of which *kind* (``node`` or
  ``controller``), the :class:`~csi_sidecars.run.registry.BundledRole` interface a role's
  adapter implements, and the kind's runner. Roles of different kinds never share a process.
* :mod:`~csi_sidecars.run.flags`: every role keeps its own flags, as ``--<role>.<flag>``; a flag
  given without the prefix goes to every selected role that has it (docs/run.md).
* :mod:`~csi_sidecars.run.command`: the click command; it peeks at ``--roles`` before parsing, so
  ``--help`` shows exactly the selected roles' flags.
* :mod:`~csi_sidecars.run.supervise`: crash-only supervision shared by every kind: the first role
  that ends stops the others, and the process exits with its code, naming it.
* :mod:`~csi_sidecars.run.node`, :mod:`~csi_sidecars.run.http`: the node kind: adapters of the two
  node roles, shared :class:`~csi_sidecars.csi.lean.link.DriverLink` per driver address, shared
  HTTP servers per endpoint.
* :mod:`~csi_sidecars.run.controller`: the controller kind (provisioner, attacher, resizer,
  snapshotter, cluster-driver-registrar): each role configured by its own command, one driver
  connection per socket, shared informers, a Lease per role
  (:mod:`csi_sidecars.controller.bundle`).
"""
