"""Settings for every test process, made before anything imports gRPC.

The tests start processes (drivers, sidecars, the control plane) while their own gRPC channels
are busy. gRPC's fork handlers then run in the forked child before it execs, and they can hang
it there (grpc/grpc#22624): a sidecar that never starts. Every fork here is followed by exec, the
case gRPC documents ``GRPC_ENABLE_FORK_SUPPORT=0`` for.
"""

import os

os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")
