"""`m2aenet web`: serve a page on this machine to deblur photos in a browser.

Nothing leaves the machine: the page, its script and its style come from the package, photos
are processed by the local model, and the server listens on 127.0.0.1 unless `--allow-remote`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile

from m2aenet.commands.arguments import (
    add_device_option,
    add_threshold_option,
    add_weights_option,
    positive_int,
)

PROG = "m2aenet web"
DEFAULT_PORT = 8765


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the `web` sub-command."""
    parser = subparsers.add_parser(
        "web",
        help="a local web page to deblur photos (drop a photo, compare, download)",
        description=(
            "Serve a page on this machine: drop or pick a photo, see the restored photo with a "
            "before/after slider and the blur mask, download the result as `m2aenet deblur` "
            "writes it. Stop with Ctrl-C."
        ),
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: %(default)s, this machine only)",
    )
    parser.add_argument(
        "--port",
        type=port_number,
        default=DEFAULT_PORT,
        help="port to listen on; 0 picks a free one (default: %(default)s)",
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a --host that other machines can reach (the page has no login)",
    )
    add_weights_option(parser)
    add_threshold_option(parser, "the page's starting blur-mask threshold")
    add_device_option(parser)
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        metavar="N",
        help="CPU threads for the model (default: torch's choice)",
    )
    parser.set_defaults(func=run)


def port_number(text: str) -> int:
    """A TCP port, 0..65535 (0: any free port), or an argparse error naming the value."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0..65535, got {text!r}")
    return value


def run(args: argparse.Namespace) -> int:
    """Load the model, serve until Ctrl-C or SIGTERM; return 0."""
    import torch

    from m2aenet.api import Deblurrer
    from m2aenet.web.handlers import DeblurService
    from m2aenet.web.server import check_host, make_server, page_address

    check_host(args.host, args.allow_remote)  # before the model loads
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    deblurrer = Deblurrer.from_pretrained(
        args.weights, device=args.device, threshold=args.threshold
    )
    with tempfile.TemporaryDirectory(prefix="m2aenet-web-") as workdir:
        service = DeblurService(deblurrer, workdir)
        server = make_server(service, args.host, args.port, allow_remote=args.allow_remote)
        print(f"{PROG}: serving on {page_address(server)}  (Ctrl-C stops)", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:  # Ctrl-C, and SIGTERM (cli turns it into Terminated)
            print(f"{PROG}: stopped", file=sys.stderr)
        finally:
            server.server_close()
            service.close()
    return 0
