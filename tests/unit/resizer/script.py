"""Walk a plan without I/O: continuations get made-up answers, writes are applied in memory.

``Walk`` keeps the objects a plan writes (merge patches applied to copies), answers CSI calls
from a function the test gives, and records every action, so a table test can check the whole
sequence and the final objects of one decision.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc

from csi_sidecars.controller import actions as a
from csi_sidecars.kube.objects import JsonDict, name
from csi_sidecars.kube.patch import apply_merge_patch

Answer = Callable[[str, Any], Any]


def grant(method: str, request: Any) -> Any:
    """A driver that does what it is asked (expands to the requested size, node step needed)."""
    from csi_sidecars.csi.messages import csi_pb2

    if method == "ControllerExpandVolume":
        return csi_pb2.ControllerExpandVolumeResponse(
            capacity_bytes=request.capacity_range.required_bytes, node_expansion_required=True
        )
    return csi_pb2.ControllerModifyVolumeResponse()


@dataclass
class Walk:
    """The objects a plan may write, and what it did."""

    objects: dict[str, JsonDict]
    answer: Answer = grant
    pods: list[JsonDict] = field(default_factory=list)
    secrets: dict[str, JsonDict] = field(default_factory=dict)
    done: list[a.Action] = field(default_factory=list)
    outcome: a.Outcome | None = None

    def run(self, plan: a.Plan) -> Walk:
        pending = list(plan)
        while pending:
            action = pending.pop(0)
            self.done.append(action)
            if isinstance(action, a.Done | a.Retry | a.RetryAfter | a.Redecide):
                self.outcome = action
                return self
            nxt = self._one(action)
            if nxt is not None:
                pending = list(nxt)
        self.outcome = a.Done()
        return self

    def _one(self, action: a.Action) -> a.Plan | None:
        if isinstance(action, a.Patch):
            key = action.name
            obj = apply_merge_patch(self.objects[key], action.body)
            meta = obj.setdefault("metadata", {})
            meta["resourceVersion"] = str(int(meta.get("resourceVersion") or 0) + 1)
            self.objects[key] = obj
            return action.then(copy.deepcopy(obj)) if action.then else None
        if isinstance(action, a.Call):
            try:
                reply = self.answer(action.method, action.request)
            except Exception as err:  # the scripted driver error
                return action.on_error(err)
            return action.then(reply)
        if isinstance(action, a.List):
            return action.then(self.pods)
        if isinstance(action, a.Read):
            return action.then(self.secrets.get(f"{action.namespace}/{action.name}"))
        return None

    def of(self, kind: type) -> list[Any]:
        """The actions of one type, in order."""
        return [x for x in self.done if isinstance(x, kind)]

    def events(self) -> list[tuple[str, str, str]]:
        """(type, reason, message) of the events."""
        return [(e.event.type, e.event.reason, e.event.message) for e in self.of(a.Emit)]

    def calls(self, method: str) -> list[Any]:
        """The requests of one CSI method."""
        return [c.request for c in self.of(a.Call) if c.method == method]


def obj(walk: Walk, o: JsonDict) -> JsonDict:
    """The current copy of ``o`` in the walk."""
    return walk.objects[name(o)]


class RpcError(grpc.RpcError):
    """A made-up gRPC error (what grpc.aio raises, minus the channel)."""

    def __init__(self, code: Any, details: str = "boom") -> None:
        super().__init__(details)
        self._code, self._details = code, details

    def code(self) -> Any:
        return self._code

    def details(self) -> str:
        return self._details
