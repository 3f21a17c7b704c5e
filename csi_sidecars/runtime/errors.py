"""The one error type for flag values that cannot work.

Every role raises :class:`ConfigError` from its start-up validation. It is a
:class:`click.UsageError`, so raised while click parses it prints ``Error: <message>`` and exits
2; a role that validates after parsing logs the message and exits 1, as the Go sidecars do.
"""

from __future__ import annotations

import click


class ConfigError(click.UsageError):
    """A flag value or combination a role refuses at start-up."""
