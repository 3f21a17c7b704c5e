"""What every test tier shares: one poll-with-deadline, one free port, one HTTP GET, one fake
CSI driver, and the role-as-a-subprocess runner.

* :func:`tests.support.poll.poll`: wait for a condition with a deadline (never a fixed sleep).
* :mod:`tests.support.net`: :func:`~tests.support.net.free_port`,
  :func:`~tests.support.net.http_get`.
* :mod:`tests.support.fake_driver`: :class:`~tests.support.fake_driver.FakeDriver`, a scriptable
  Identity/Controller/Node server on a unix socket.
* :mod:`tests.support.role`: :class:`~tests.support.role.Role`, ``python -m csi_sidecars ...``
  as a container runs it.
"""
