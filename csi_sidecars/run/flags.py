"""How the bundled roles' flags appear on ``csi-sidecars run``.

Every role keeps all its flags, under its name: ``--livenessprobe.http-endpoint=:9808`` is the
livenessprobe's ``--http-endpoint`` and nobody else's. Flags both roles have (``--csi-address``,
``--http-endpoint``, ``--health-port``) can also be given once without the prefix; such a flag
goes to every selected role that declares it, and a prefixed flag wins over it for its role::

    csi-sidecars run --roles node-driver-registrar,livenessprobe \\
        --csi-address=/csi/csi.sock \\
        --node-driver-registrar.kubelet-registration-path=/var/lib/kubelet/plugins/x/csi.sock \\
        --node-driver-registrar.http-endpoint=:9809 --livenessprobe.http-endpoint=:9808

The values are converted and checked by each role's own option (types, defaults, Go-style
booleans and durations), so a role gets exactly what its own subcommand would have parsed. The
bundle's own flags are ``--roles``, ``-v``, ``--logging-format`` and ``--version``. A flag whose
declarations disagree on being a boolean has no unprefixed form; its prefixed forms always work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import click
from click.core import ParameterSource

from csi_sidecars.runtime.flags import GO_BOOL, GoBoolType

SEPARATOR = "."
_EXPLICIT = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)


def _ident(text: str) -> str:
    return text.replace("-", "_").replace(".", "_")


def _long_opts(param: click.Option) -> list[str]:
    return [opt for opt in param.opts if opt.startswith("--")]


def _is_bool(param: click.Option) -> bool:
    return isinstance(param.type, GoBoolType | click.types.BoolParamType) or param.is_flag


class RoleFlag(NamedTuple):
    """One flag of one role: the role's own option and the bundle's prefixed copy."""

    role: str
    own: click.Option
    prefixed: click.Option


@dataclass
class FlagTable:
    """The bundle's flags for the selected roles and how values flow back to each role."""

    per_role: dict[str, list[RoleFlag]] = field(default_factory=dict)
    #: unprefixed option -> the role flags it sets
    shared: list[tuple[click.Option, list[RoleFlag]]] = field(default_factory=list)

    def params(self) -> list[click.Parameter]:
        """The unprefixed flags, then every role's prefixed ones."""
        out: list[click.Parameter] = [option for option, _ in self.shared]
        out.extend(f.prefixed for flags in self.per_role.values() for f in flags)
        return out

    def values_for(self, role: str, ctx: click.Context) -> dict[str, Any]:
        """The role's flag values, keyed by its own parameter names.

        Raises:
            click.BadParameter: when an unprefixed value is not valid for this role's flag.
        """
        unprefixed: dict[str, click.Option] = {}
        for option, members in self.shared:
            for member in members:
                if member.role == role:
                    unprefixed[member.own.name or ""] = option
        values: dict[str, Any] = {}
        for flag in self.per_role[role]:
            name = flag.own.name or ""
            prefixed_name = flag.prefixed.name or ""
            value = ctx.params[prefixed_name]
            shared = unprefixed.get(name)
            if shared is not None and ctx.get_parameter_source(prefixed_name) not in _EXPLICIT:
                raw = ctx.params[shared.name or ""]
                if raw is not None and raw != ():
                    value = flag.own.type_cast_value(ctx, raw)
            values[name] = value
        return values


def _prefixed(role: str, param: click.Option) -> click.Option:
    opts = [f"--{role}{SEPARATOR}{opt[2:]}" for opt in _long_opts(param)]
    return click.Option(
        [*opts, f"{_ident(role)}__{param.name}"],
        type=param.type,
        default=param.default,
        multiple=param.multiple,
        show_default=param.show_default,
        metavar=param.metavar,
        help=f"[{role}] {param.help or ''}".rstrip(),
    )


def _unprefixed(opt: str, members: list[RoleFlag]) -> click.Option | None:
    if len({_is_bool(m.own) for m in members}) > 1:
        return None
    types = {id(m.own.type) for m in members}
    kind: Any = members[0].own.type if len(types) == 1 else click.STRING
    if _is_bool(members[0].own):
        kind = GO_BOOL
    roles = ", ".join(m.role for m in members)
    return click.Option(
        [opt, f"all__{_ident(opt[2:])}"],
        type=kind,
        default=None,
        multiple=any(m.own.multiple for m in members),
        metavar=members[0].own.metavar,
        help=f"Sets {opt} of {roles}; --<role>{SEPARATOR}{opt[2:]} wins for its role.",
    )


def build(roles: list[tuple[str, list[click.Parameter]]]) -> FlagTable:
    """The flag table for ``roles``: (name, the role's own parameters), in ``--roles`` order."""
    table = FlagTable()
    by_opt: dict[str, list[RoleFlag]] = {}
    for role, params in roles:
        flags = table.per_role.setdefault(role, [])
        for param in params:
            if not isinstance(param, click.Option) or not _long_opts(param):
                continue
            flag = RoleFlag(role, param, _prefixed(role, param))
            flags.append(flag)
            by_opt.setdefault(_long_opts(param)[0], []).append(flag)
    for opt, members in by_opt.items():
        option = _unprefixed(opt, members)
        if option is not None:
            table.shared.append((option, members))
    return table
