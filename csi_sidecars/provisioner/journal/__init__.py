"""The no-leak journal: a CreateVolume is recorded on the API server before it is sent.

* :mod:`.intent`: one record (:class:`~.intent.Intent`: claim, volume name, request without
  secrets, StorageClass facts) and the pure decisions built on it (record, create, clean up,
  release; what follows a cleanup CreateVolume or DeleteVolume).
* :mod:`.lease`: the :class:`~.lease.Journal`, every in-flight record in one Lease
  (``<driver>-provisioner-journal``), written in batches by one writer task.

Why, how it behaves at each crash point, and its limits: ``docs/provisioner.md``.
"""

from csi_sidecars.provisioner.journal.intent import Intent, intent_from_json, intent_to_json
from csi_sidecars.provisioner.journal.lease import (
    Journal,
    JournalError,
    decode_records,
    encode_records,
    journal_name,
)

__all__ = [
    "Intent",
    "Journal",
    "JournalError",
    "decode_records",
    "encode_records",
    "intent_from_json",
    "intent_to_json",
    "journal_name",
]
