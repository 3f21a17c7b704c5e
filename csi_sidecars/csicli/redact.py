"""Defence in depth for secrets: scrub the values we sent from everything we print.

Request fields marked ``csi_secret`` are already replaced by ``***stripped***`` in every log
line (:func:`csi_sidecars.csi.sanitize.strip_secrets`). A driver can still echo a secret back,
in an error message ("login failed for password hunter2") or a reply field. :class:`Redactor`
knows the secret values of the current invocation and replaces any occurrence of them in output
data, error messages and log lines. Values shorter than :data:`MIN_LENGTH` characters are not
searched for: replacing every ``1`` or ``on`` would destroy the output while hiding nothing a
reader could not guess.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any, TextIO, cast

from csi_sidecars.csi.sanitize import STRIPPED

MIN_LENGTH = 4


class Redactor:
    """Replaces known secret values with ``***stripped***``."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        """Remember ``values`` (longest first, so a secret containing another goes whole)."""
        self.values: list[str] = []
        self.add(values)

    def add(self, values: Iterable[str]) -> None:
        """Also scrub ``values``."""
        merged = set(self.values) | {v for v in values if len(v) >= MIN_LENGTH}
        self.values = sorted(merged, key=len, reverse=True)

    def text(self, text: str) -> str:
        """``text`` with every known secret value replaced."""
        for value in self.values:
            if value in text:
                text = text.replace(value, STRIPPED)
        return text

    def data(self, obj: Any) -> Any:
        """A copy of plain data (dicts, lists, strings) with secret values replaced in strings."""
        if not self.values:
            return obj
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return {self.text(str(k)): self.data(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [self.data(v) for v in obj]
        return obj

    def stream(self, target: TextIO) -> TextIO:
        """A text stream that writes to ``target`` with secret values replaced."""
        return cast("TextIO", _RedactingStream(target, self))


class _RedactingStream(io.TextIOBase):
    """Line-oriented writer: whole lines are scrubbed, so a secret is never split across writes."""

    def __init__(self, target: TextIO, redactor: Redactor) -> None:
        super().__init__()
        self._target = target
        self._redactor = redactor
        self._pending = ""

    def write(self, s: str) -> int:
        self._pending += s
        if "\n" in self._pending:
            head, sep, tail = self._pending.rpartition("\n")
            self._target.write(self._redactor.text(head + sep))
            self._pending = tail
        return len(s)

    def flush(self) -> None:
        if self._pending:
            self._target.write(self._redactor.text(self._pending))
            self._pending = ""
        self._target.flush()

    def writable(self) -> bool:
        return True
