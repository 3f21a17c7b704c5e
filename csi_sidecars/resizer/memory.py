"""What the resizer remembers between syncs of a claim, and how it learns it.

Go keeps four in-process sets per controller: claims whose last expansion failed finally, claims
whose driver said FailedPrecondition (offline expansion only), claims whose last modification
is uncertain, and "slow sets" of claims that recently failed as infeasible. Here one
:class:`Memory` holds the same facts, learnt in two places that are not decisions:

* :meth:`Memory.observe` runs before each decision with the claim as the cache shows it (the
  slow sets follow the claim's status: infeasible since when);
* :func:`watch_calls` wraps the CSI calls of a plan so that the driver's answer is recorded
  when it arrives (the continuations themselves stay pure).

A decision gets an immutable :class:`Recall` of the facts for its claim.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from csi_sidecars.controller import actions as a
from csi_sidecars.resizer.errors import DriverError, classify

EXPAND = "ControllerExpandVolume"
MODIFY = "ControllerModifyVolume"


@dataclass(frozen=True, slots=True)
class Recall:
    """The facts one decision may use about its claim.

    Attributes:
        expand_error: the driver's last answer to ControllerExpandVolume for the claim, when it
            was an error (None: success or no call in this process).
        expand_unimplemented: ``required_bytes`` the driver answered Unimplemented for.
        expand_slow: seconds the claim must still wait after an infeasible expansion (0: none).
        modify_error: the last ControllerModifyVolume error (None: success or no call yet).
        modify_answered: whether ControllerModifyVolume was answered at all in this process.
        modify_unimplemented: the parameters the driver answered Unimplemented for.
        modify_slow: seconds to wait after an infeasible modification (0: none).
    """

    expand_error: DriverError | None = None
    expand_unimplemented: int | None = None
    expand_slow: float = 0.0
    modify_error: DriverError | None = None
    modify_answered: bool = False
    modify_unimplemented: tuple[tuple[str, str], ...] | None = None
    modify_slow: float = 0.0

    @property
    def in_use_error(self) -> bool:
        """The last expansion answer was FailedPrecondition (offline expansion only)."""
        return self.expand_error is not None and self.expand_error.in_use

    @property
    def final_error(self) -> bool:
        """The last expansion failed with a final error."""
        return self.expand_error is not None and self.expand_error.final


@dataclass
class _Facts:
    expand_error: DriverError | None = None
    expand_unimplemented: int | None = None
    expand_infeasible_since: float | None = None
    modify_error: DriverError | None = None
    modify_answered: bool = False
    modify_unimplemented: tuple[tuple[str, str], ...] | None = None
    modify_infeasible_since: float | None = None


def _slow(since: float | None, now: float, hold: float) -> tuple[float | None, float]:
    """(new since, seconds left) for a claim that is infeasible now."""
    if since is None:
        return now, hold
    left = since + hold - now
    if left <= 0:
        return now, 0.0  # one attempt goes through; the next infeasible answer waits again
    return since, left


@dataclass
class Memory:
    """Per-claim facts of one resizer process (keys ``namespace/name``).

    Attributes:
        hold: how long an infeasible request waits before it is tried again
            (``--retry-interval-max``, as Go's slow set).
    """

    hold: float
    _facts: dict[str, _Facts] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self._facts)

    def observe(
        self,
        key: str,
        *,
        expand_infeasible: bool | None = None,
        modify_infeasible: bool | None = None,
        now: float,
    ) -> Recall:
        """Update a slow set from the claim's status and return the facts to decide with.

        Each decision passes only its own flag (None leaves the other slow set alone, so the
        expansion's look at a claim does not use up the modification's retry, and back).
        """
        facts = self._facts.get(key)
        if facts is None:
            if not (expand_infeasible or modify_infeasible):
                return Recall()
            facts = self._facts.setdefault(key, _Facts())
        expand_left = modify_left = 0.0
        if expand_infeasible:
            facts.expand_infeasible_since, expand_left = _slow(
                facts.expand_infeasible_since, now, self.hold
            )
        elif expand_infeasible is not None:
            facts.expand_infeasible_since = None
        if modify_infeasible:
            facts.modify_infeasible_since, modify_left = _slow(
                facts.modify_infeasible_since, now, self.hold
            )
        elif modify_infeasible is not None:
            facts.modify_infeasible_since = None
        recall = Recall(
            facts.expand_error,
            facts.expand_unimplemented,
            expand_left,
            facts.modify_error,
            facts.modify_answered,
            facts.modify_unimplemented,
            modify_left,
        )
        self._prune(key, facts)
        return recall

    def answered(self, key: str, method: str, request: Any, err: BaseException | None) -> None:
        """Record the driver's answer to a call made for ``key``."""
        facts = self._facts.setdefault(key, _Facts())
        error = classify(err) if err is not None else None
        if method == EXPAND:
            facts.expand_error = error
            facts.expand_unimplemented = (
                int(request.capacity_range.required_bytes)
                if error is not None and error.unimplemented
                else None
            )
        elif method == MODIFY:
            facts.modify_error = error
            facts.modify_answered = True
            facts.modify_unimplemented = (
                tuple(sorted(request.mutable_parameters.items()))
                if error is not None and error.unimplemented
                else None
            )
        self._prune(key, facts)

    def forget(self, key: str) -> None:
        """The claim is gone."""
        self._facts.pop(key, None)

    def _prune(self, key: str, facts: _Facts) -> None:
        if facts == _Facts() or facts == _Facts(modify_answered=True):
            self._facts.pop(key, None)


Note = Callable[[a.Call, BaseException | None], None]


def watch_calls(plan: a.Plan, note: Note) -> a.Plan:
    """``plan`` with every CSI call (also in continuations) reporting its answer to ``note``."""
    return [_watched(action, note) for action in plan]


def _watched(action: a.Action, note: Note) -> a.Action:
    if isinstance(action, a.Call):
        call = action

        def then(reply: Any) -> a.Plan:
            note(call, None)
            return watch_calls(call.then(reply), note)

        def on_error(err: BaseException) -> a.Plan:
            note(call, err)
            return watch_calls(call.on_error(err), note)

        return dataclasses.replace(call, then=then, on_error=on_error)
    if isinstance(action, a.Patch | a.Create | a.Read | a.List | a.Delete):
        changes: dict[str, Any] = {}
        inner_then = getattr(action, "then", None)
        if inner_then is not None:
            changes["then"] = lambda obj, f=inner_then: watch_calls(f(obj), note)
        if action.on_error is not None:
            changes["on_error"] = lambda exc, f=action.on_error: watch_calls(f(exc), note)
        return dataclasses.replace(action, **changes) if changes else action
    return action
