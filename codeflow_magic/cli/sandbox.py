"""`codeflow sandbox build`: the docker kernel image (`executors.image` builds it)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from ..errors import UsageError
from ..executors.image import IMAGE_NAME, build_image, validate_packages
from ..options import add_options


def _cmd_build(args: argparse.Namespace) -> int:
    from ..config import load_settings

    settings = load_settings(getattr(args, "set", None) or ())
    image = args.image or settings.execution.docker_image
    if not IMAGE_NAME.fullmatch(image):
        raise UsageError(
            f"{image!r} is not a docker image name; write it as name[:tag] in lower case, "
            "e.g. codeflow-kernel:latest"
        )
    packages = list(settings.execution.docker_packages)
    if args.packages:
        packages += [p for p in args.packages.split(",") if p.strip()]
    packages = validate_packages(packages)  # before docker is even looked for
    build_image(image, packages)
    print(image)
    return 0


def register(subparsers: Any) -> None:
    """`codeflow sandbox build [--packages p1,p2] [--image NAME]`."""
    parser = subparsers.add_parser(
        "sandbox", help="Manage the docker kernel image used by --backend docker."
    )
    sub = parser.add_subparsers(dest="sandbox_command", metavar="ACTION", required=True)
    build = sub.add_parser(
        "build",
        help="Build the kernel image from a Debian rootfs and host-downloaded wheels.",
    )
    add_options(build, ("packages", "image", "set"))
    build.set_defaults(func=_cmd_build)


def main(argv: Sequence[str] | None = None) -> int:
    """`codeflow sandbox ...` alone (`python -m codeflow_magic.cli.sandbox build`)."""
    from ..errors import CodeFlowError
    from .common import ArgumentParser, UsageErrorExit

    parser = ArgumentParser(prog="codeflow")
    sub = parser.add_subparsers(dest="command", parser_class=ArgumentParser)
    register(sub)
    try:
        args = parser.parse_args(["sandbox", *(sys.argv[1:] if argv is None else argv)])
        return int(args.func(args))
    except UsageErrorExit as exc:
        print(exc, file=sys.stderr)
        return 2
    except CodeFlowError as exc:
        print(f"codeflow: {exc}", file=sys.stderr)
        return exc.exit_status


if __name__ == "__main__":
    sys.exit(main())
