"""The Metadata Format rules of the CSI spec across a whole SnapshotMetadata stream.

Tuples must be in ascending order and must not overlap, also across messages; the type and
volume capacity must not change mid-stream; FIXED_LENGTH tuples all have one size; a message
holds at most ``max_results`` tuples; the first tuple must end after ``starting_offset``.
:class:`StreamCheck` also knows where a broken stream must resume.
"""

from __future__ import annotations

from typing import Any

from csi_sidecars.csicli.speccheck import REQUIRED, Checker, SpecWarning

SECTION = "SnapshotMetadata"


class StreamCheck:
    """The Metadata Format rules across every message of a GetMetadataAllocated/Delta stream."""

    def __init__(self, method: str, request: Any) -> None:
        """Check the stream of ``method`` answering ``request``."""
        self.method = method
        self.starting_offset = int(request.starting_offset)
        self.max_results = int(request.max_results)
        self.kind: int | None = None
        self.capacity: int | None = None
        self.fixed_size: int | None = None
        self.end: int | None = None
        self.index = 0

    def feed(self, msg: Any) -> list[SpecWarning]:
        """Check the next message of the stream."""
        c = Checker(self.method, None)
        path = f"message[{self.index}]"
        self.index += 1
        section = SECTION
        if msg.block_metadata_type == 0:
            c.warn(f"{path}.block_metadata_type", "is UNKNOWN", section, REQUIRED)
        elif self.kind is None:
            self.kind = msg.block_metadata_type
        elif msg.block_metadata_type != self.kind:
            c.warn(
                f"{path}.block_metadata_type",
                "changed mid-stream",
                section,
                "This value must be the same in all such messages returned by the stream.",
            )
        if self.capacity is None:
            self.capacity = msg.volume_capacity_bytes
            if msg.volume_capacity_bytes <= 0:
                c.warn(
                    f"{path}.volume_capacity_bytes",
                    f"is {msg.volume_capacity_bytes}",
                    section,
                    REQUIRED,
                )
        elif msg.volume_capacity_bytes != self.capacity:
            c.warn(
                f"{path}.volume_capacity_bytes",
                "changed mid-stream",
                section,
                "This value must be the same in all such messages returned by the stream.",
            )
        if self.max_results > 0 and len(msg.block_metadata) > self.max_results:
            c.warn(
                f"{path}.block_metadata",
                f"has {len(msg.block_metadata)} tuples for max_results {self.max_results}",
                section,
                "the number of entries in this list MUST be less than or equal to that value.",
            )
        for i, block in enumerate(msg.block_metadata):
            self._block(c, f"{path}.block_metadata[{i}]", block)
        return c.out

    def _block(self, c: Checker, path: str, block: Any) -> None:
        section = SECTION
        if block.size_bytes <= 0:
            c.warn(
                f"{path}.size_bytes",
                f"is {block.size_bytes}",
                section,
                "size_bytes MUST be greater than zero.",
            )
        if self.kind == 1:  # FIXED_LENGTH
            if self.fixed_size is None:
                self.fixed_size = block.size_bytes
            elif block.size_bytes != self.fixed_size:
                c.warn(
                    f"{path}.size_bytes",
                    f"is {block.size_bytes}, not the fixed {self.fixed_size}",
                    section,
                    "If block_metadata_type is FIXED_LENGTH, "
                    "then the size_bytes field of each message ... MUST be constant.",
                )
        if self.end is None:
            if block.byte_offset + block.size_bytes <= self.starting_offset:
                c.warn(
                    f"{path}",
                    f"ends before starting_offset {self.starting_offset}",
                    section,
                    "The SP MUST ensure that the returned response stream does not "
                    "contain BlockMetadata tuples that end before the requested "
                    "starting_offset",
                )
        elif block.byte_offset < self.end:
            c.warn(
                f"{path}.byte_offset",
                f"is {block.byte_offset}, before the end {self.end} of the previous tuple",
                section,
                "The byte_offset fields of adjacent BlockMetadata messages MUST be strictly "
                "increasing and messages MUST NOT overlap",
            )
        self.end = max(self.end or 0, block.byte_offset + block.size_bytes)

    def resume_offset(self) -> int:
        """Where a resumed stream must start: just after the last tuple received."""
        return self.end if self.end is not None else self.starting_offset
