"""Reading the Secret a CSI call needs, as a plan step (the Secret is read, never cached).

The values go into the request only; errors name the Secret, never a value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from csi_sidecars.controller import actions as a
from csi_sidecars.kube.objects import JsonDict, SecretError, secret_data
from csi_sidecars.kube.resources import SECRETS, ApiError


def with_secrets(
    ref: tuple[str, str] | None,
    send: Callable[[Mapping[str, str]], a.Plan],
    fail: Callable[[str], a.Plan],
) -> a.Plan:
    """``send(secrets)`` after reading the Secret ``ref`` (namespace, name); no ref: no secrets.

    A missing or undecodable Secret, or a failed read, goes to ``fail(message)``.
    """
    if ref is None:
        return send({})
    ns, sname = ref

    def got(secret: JsonDict | None) -> a.Plan:
        if secret is None:
            return fail(
                f'error getting secret {sname} in namespace {ns}: secrets "{sname}" not found'
            )
        try:
            data = secret_data(secret, f"{ns}/{sname}")
        except SecretError as err:
            return fail(str(err))
        return send(data)

    def failed(exc: ApiError) -> a.Plan:
        return fail(f"error getting secret {sname} in namespace {ns}: {exc.message or exc}")

    return (a.Read(SECRETS, sname, ns, then=got, on_error=failed),)
