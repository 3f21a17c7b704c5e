"""Allows ``python -m csi_sidecars``."""

from csi_sidecars.cli import main

if __name__ == "__main__":
    main()
