"""``python -m csi_sidecars.playground.build_images``: build the testbed's local images.

Builds the pause and busybox images (well under a second) and the csi-sidecars image
(:mod:`.sidecars_image`; a minute or two the first time, mostly downloads) into
``<cache>/images``, and with ``--import-into SOCKET`` imports them into a containerd. The
testbed imports them into each real node's containerd itself; ``testbed/build-images.sh`` is
this command.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from csi_sidecars.playground import images, sidecars_image


def main(argv: Sequence[str] | None = None) -> int:
    """Build the images; returns the exit status."""
    parser = argparse.ArgumentParser(prog="testbed/build-images.sh", description=__doc__)
    parser.add_argument("names", nargs="*", help="pause, busybox, csi-sidecars (default: all)")
    parser.add_argument("--out-dir", type=Path, default=None, help="default <cache>/images")
    parser.add_argument(
        "--import-into",
        metavar="SOCKET",
        help="also import the images into the containerd at SOCKET (namespace k8s.io)",
    )
    args = parser.parse_args(argv)
    known = ("pause", "busybox", "csi-sidecars")
    unknown = sorted(set(args.names) - set(known))
    if unknown:
        parser.error(f"unknown image(s) {', '.join(unknown)}: choose from {', '.join(known)}")
    wanted = set(args.names or known)
    built: list[images.BuiltImage] = []
    try:
        if wanted & {"pause", "busybox"}:
            small = images.ensure_small_images(out_dir=args.out_dir)
            built += [b for b in small if b.tar.stem in wanted]
        if "csi-sidecars" in wanted:
            report = sidecars_image.build(args.out_dir)
            source = "the Containerfile" if report.from_containerfile else "the built-in contract"
            print(
                f"csi-sidecars image {report.name}: {report.size / 1e6:.0f} MB in "
                f"{report.seconds:.0f}s (contract from {source})",
                file=sys.stderr,
            )
            built.append(images.BuiltImage(report.name, report.tar))
    except (FileNotFoundError, RuntimeError, subprocess.CalledProcessError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for image in built:
        if args.import_into:
            began = time.monotonic()
            subprocess.run(
                ["ctr", f"--address={args.import_into}", "--namespace=k8s.io", "images",
                 "import", str(image.tar)],
                check=True,
            )  # fmt: skip
            print(f"imported {image.name} in {time.monotonic() - began:.1f}s", file=sys.stderr)
        print(f"{image.name} {image.tar}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
