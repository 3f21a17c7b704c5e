"""Persistence of the playground driver's state in its state directory.

Layout (like hostpathplugin's ``--statedir``)::

    STATEDIR/state.json          volumes, snapshots, group snapshots (see StateData.to_json)
    STATEDIR/volumes/<id>/       one directory per volume (sizes are bookkeeping only; with
                                 --mount-volumes it is what pods see, block.img for block)
    STATEDIR/snapshots/<id>.snap one empty marker file per snapshot
    STATEDIR/snapshots/<id>.data a copy of the volume's directory when the snapshot was cut;
                                 a volume restored from the snapshot (or cloned from a
                                 volume) starts as a copy of it

``state.json`` is written atomically (temporary file in the same directory, fsync, rename), so a
driver killed at any moment leaves either the old or the new state, never a torn file. Crash
tests read it back with :func:`load_state`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from csi_sidecars.playground.driver.model import StateData

STATE_FILE = "state.json"


def load_state(statedir: str | os.PathLike[str]) -> StateData:
    """Read the state a driver persisted in ``statedir``; empty when there is none yet.

    Raises:
        ValueError: when ``state.json`` exists but is not a valid state document.
    """
    path = Path(statedir) / STATE_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return StateData()
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: {err}") from None
    return StateData.from_json(doc)


class StateStore:
    """Reads and writes one state directory."""

    def __init__(self, statedir: str | os.PathLike[str]) -> None:
        self.root = Path(statedir)
        self.root.mkdir(mode=0o750, parents=True, exist_ok=True)
        (self.root / "volumes").mkdir(exist_ok=True)
        (self.root / "snapshots").mkdir(exist_ok=True)

    def load(self) -> StateData:
        """The persisted state (empty on first start)."""
        return load_state(self.root)

    def save(self, data: StateData) -> None:
        """Replace ``state.json`` with ``data``, atomically."""
        text = json.dumps(data.to_json(), indent=1, sort_keys=True)
        fd, tmp = tempfile.mkstemp(prefix=".state-", suffix=".tmp", dir=self.root)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.root / STATE_FILE)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def volume_path(self, volume_id: str) -> Path:
        """Where the directory of ``volume_id`` lives."""
        return self.root / "volumes" / volume_id

    def snapshot_path(self, snapshot_id: str) -> Path:
        """Where the marker file of ``snapshot_id`` lives."""
        return self.root / "snapshots" / f"{snapshot_id}.snap"

    def snapshot_data_path(self, snapshot_id: str) -> Path:
        """Where the copy of the volume's content taken by ``snapshot_id`` lives."""
        return self.root / "snapshots" / f"{snapshot_id}.data"

    def create_volume(self, volume_id: str, source: tuple[str, str] | None = None) -> None:
        """Create the directory of a new volume, a copy of ``source`` (``("snapshot", id)`` or
        ``("volume", id)``) when given and present."""
        target = self.volume_path(volume_id)
        origin: Path | None = None
        if source is not None:
            kind, source_id = source
            origin = (
                self.snapshot_data_path(source_id)
                if kind == "snapshot"
                else self.volume_path(source_id)
            )
        if origin is not None and origin.is_dir() and not target.exists():
            shutil.copytree(origin, target, symlinks=True)
            target.chmod(0o777)
        target.mkdir(mode=0o777, parents=True, exist_ok=True)

    def delete_volume(self, volume_id: str) -> None:
        """Remove the directory of a volume (missing is fine)."""
        shutil.rmtree(self.volume_path(volume_id), ignore_errors=True)

    def volume_exists(self, volume_id: str) -> bool:
        """Whether the directory of ``volume_id`` is still there."""
        return self.volume_path(volume_id).is_dir()

    def create_snapshot(self, snapshot_id: str, source_volume_id: str | None = None) -> None:
        """Create the marker file of a new snapshot and copy the source volume's content."""
        if source_volume_id is not None and self.volume_exists(source_volume_id):
            data = self.snapshot_data_path(snapshot_id)
            if not data.exists():
                shutil.copytree(self.volume_path(source_volume_id), data, symlinks=True)
        self.snapshot_path(snapshot_id).touch()

    def delete_snapshot(self, snapshot_id: str) -> None:
        """Remove the marker file and content of a snapshot (missing is fine)."""
        self.snapshot_path(snapshot_id).unlink(missing_ok=True)
        shutil.rmtree(self.snapshot_data_path(snapshot_id), ignore_errors=True)
