"""Generated protobuf and gRPC modules. Do not edit: run scripts/gen-protos.sh.

Only csi_sidecars.csi imports these; other packages use the CSI layer's API.
"""
