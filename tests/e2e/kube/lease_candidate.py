"""A leader-election candidate process for the e2e tests: prints LEADING once it leads.

Usage: python lease_candidate.py KUBECONFIG NAMESPACE LOCK IDENTITY LEASE RENEW RETRY RELEASE
SIGTERM stops it (releasing the lease when RELEASE is "true"); a lost lease exits 1.
"""

from __future__ import annotations

import asyncio
import sys

from csi_sidecars.kube.client import KubeClient
from csi_sidecars.kube.config import load_client_config
from csi_sidecars.kube.leaderelection import LeaderElectionConfig, LeaderElector
from csi_sidecars.runtime.app import run


def main() -> None:
    kubeconfig, namespace, lock, identity, lease, renew, retry, release = sys.argv[1:9]

    async def amain(stop: asyncio.Event) -> int:
        async with KubeClient(await load_client_config(kubeconfig), agent="e2e-candidate") as c:
            elector = LeaderElector(
                c,
                LeaderElectionConfig(
                    lock,
                    namespace=namespace,
                    identity=identity,
                    lease_duration=float(lease),
                    renew_deadline=float(renew),
                    retry_period=float(retry),
                    release_on_cancel=release == "true",
                ),
            )

            async def lead() -> None:
                print(f"LEADING {identity}", flush=True)
                await asyncio.Event().wait()

            await elector.run(lead, stop)
            print(f"STOPPED {identity}", flush=True)
        return 0

    run(amain)


if __name__ == "__main__":
    main()
