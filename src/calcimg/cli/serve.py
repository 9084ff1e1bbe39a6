"""``calcimg serve``: the emergency-department worklist (web tool and DICOM node)."""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from typing import Any

from calcimg.cli.common import add_config_options, config_from_args
from calcimg.errors import ConfigError

__all__ = ["add_parser", "check_binding", "is_loopback", "run"]

TOKEN_ENV = "CALCIMG_TOKEN"


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "serve",
        help="run the worklist web tool (and optionally a DICOM node)",
        description=(
            "Serve the worklist: images arrive by upload, by a watched folder and by DICOM "
            "C-STORE, are analysed in the background, and appear flagged on the worklist. "
            "Everything is kept under --data. Binds to 127.0.0.1; binding any other "
            f"address needs --token (or ${TOKEN_ENV})."
        ),
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="web port (default 8000)")
    p.add_argument(
        "--data",
        default="calcimg-data",
        metavar="DIR",
        help="data directory (default ./calcimg-data)",
    )
    p.add_argument(
        "--token",
        default=os.environ.get(TOKEN_ENV),
        help=f"access token required by every page and API call (default ${TOKEN_ENV})",
    )
    p.add_argument("--dicom-port", type=int, metavar="PORT", help="also run a DICOM node here")
    p.add_argument("--ae-title", default="CALCIMG", help="the DICOM node's AE title")
    p.add_argument(
        "--dicom-host", metavar="ADDR", help="address the DICOM node binds (default --host)"
    )
    p.add_argument("--watch", metavar="DIR", help="analyse files copied into this folder")
    p.add_argument(
        "--forward",
        metavar="AE@HOST:PORT",
        help="send each image's DICOM SR and SEG to this DICOM node",
    )
    p.add_argument("--max-upload-mb", type=float, default=256.0, help="largest accepted file (MB)")
    add_config_options(p)
    p.set_defaults(run=run)


def is_loopback(host: str) -> bool:
    """True for loopback addresses and ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_binding(host: str, token: str | None) -> None:
    """Refuse a non-loopback address without a token.

    Raises
    ------
    ConfigError
    """
    if not is_loopback(host) and not token:
        raise ConfigError(
            f"--host {host} is not a loopback address: anyone who can reach it could read "
            f"patient images. Give --token TOKEN (or set ${TOKEN_ENV}) to require a token, "
            "or bind 127.0.0.1"
        )
    if token is not None and len(token) < 8:
        raise ConfigError(f"--token is {len(token)} characters long; use at least 8")


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from calcimg.dicomnode import DicomNode, Forwarder, parse_destination
    from calcimg.web.app import create_app
    from calcimg.web.service import Service
    from calcimg.web.watch import FolderWatcher

    check_binding(args.host, args.token)
    if getattr(args, "context", None):
        raise ConfigError(
            "--context gives one patient's labs and history; the worklist serves many "
            "patients, so serve does not take it (analyse with context: calcimg analyze)"
        )
    dicom_host = args.dicom_host or args.host
    if args.dicom_port is not None and not is_loopback(dicom_host) and not args.token:
        raise ConfigError(f"--dicom-host {dicom_host} is not a loopback address; see --token")
    config = config_from_args(args)
    destination = parse_destination(args.forward) if args.forward else None
    service = Service(args.data, config=config)
    if destination is not None:
        service.after_analysis = Forwarder(service, destination, ae_title=args.ae_title)
    app = create_app(
        args.data,
        token=args.token,
        config=config,
        service=service,
        max_upload_mb=args.max_upload_mb,
    )
    node = watcher = None
    try:
        if args.dicom_port is not None:
            node = DicomNode(service, port=args.dicom_port, ae_title=args.ae_title, host=dicom_host)
            node.start()
        if args.watch:
            watcher = FolderWatcher(service, args.watch)
            watcher.start()
        print(
            f"calcimg serve: worklist at http://{args.host}:{args.port}/ "
            f"(data in {service.paths.root})"
            + (f"; DICOM node {node.ae_title} on {dicom_host}:{node.port}" if node else "")
            + (f"; watching {watcher.folder}" if watcher else "")
            + (f"; forwarding results to {args.forward}" if destination else ""),
            file=sys.stderr,
            flush=True,
        )
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    finally:
        if watcher is not None:
            watcher.stop()
        if node is not None:
            node.stop()
        service.stop()
    return 0
