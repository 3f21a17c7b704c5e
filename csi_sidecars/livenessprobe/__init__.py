"""The livenessprobe role: HTTP ``/healthz`` backed by the CSI driver's ``Identity/Probe``.

``command`` (flags), ``config`` (pure flag rules and answers), ``server`` (start-up and probes).
"""
