"""``csi-sidecars csi``: a command-line client for any CSI v1.12 driver (csc's successor).

Modules: :mod:`.command` (the click group), :mod:`.identity`, :mod:`.controller`,
:mod:`.snapshots`, :mod:`.node`, :mod:`.groups`, :mod:`.metadata` and :mod:`.check` (the
commands), :mod:`.options` and :mod:`.arguments` (flag syntax, request files, secrets),
:mod:`.runner` (one call from flags to exit code), :mod:`.convert` (messages to and from data),
:mod:`.output` and :mod:`.tables` (JSON/YAML/table), :mod:`.speccheck` (spec rules on replies),
:mod:`.streamcheck` (stream rules), :mod:`.redact` (secret scrubbing), :mod:`.lifecycle`,
:mod:`.scenario`, :mod:`.scenario_steps` and :mod:`.checkrun`
(``csi check``), :mod:`.exitcodes`. The command modules import neither gRPC nor protobuf, so
``--help`` stays fast; the rest loads when a call runs.
"""
