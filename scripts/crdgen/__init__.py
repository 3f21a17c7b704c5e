"""The compact description of the snapshot CRDs that scripts/gen-crds.py turns into YAML.

``schema`` holds the building blocks (typed fields, CEL rule shapes, object references, label
selectors, printer columns, versions); ``snapshot`` and ``group`` describe the six kinds with
them. The YAML they produce carries our own field descriptions; everything else (types, required
fields, enums, rules and messages, columns, versions) matches external-snapshotter v8.6.0, which
tests/unit/crds/ checks.
"""
