"""``stylealigned serve``: the command line of the server (docs/server.md), and the client
options every ``generate`` takes (``--server URL``, ``--token-file F``)."""

from __future__ import annotations

import argparse
import sys
import time

from .launch import DEFAULT_HOST, DEFAULT_MAX_UPLOAD_MB, DEFAULT_PORT, ServerOptions

DEFAULT_MODEL = "stabilityai/stable-diffusion-xl-base-1.0"


def add_serve_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "serve", help="make pictures for other computers: a Ray Serve server (docs/server.md)",
        description="Start a StyleAligned server: a Ray cluster (or join one with --address), engine "
                    "replicas (one per GPU) and an HTTP API on --host:--port. Needs the server extra: "
                    "pip install 'stylealigned-desktop[server]'.")
    p.add_argument("--model", action="append", default=None, metavar="SOURCE",
                   help=f"a model the server offers; repeat for more, the first is loaded at start "
                        f"(default {DEFAULT_MODEL})")
    p.add_argument("--address", default=None, metavar="ADDR",
                   help="join a running Ray cluster ('auto', or HOST:PORT of its head) instead of starting one")
    p.add_argument("--replicas", type=int, default=None, metavar="N",
                   help="engine replicas (default: one per GPU; one on a machine without GPUs)")
    p.add_argument("--gpus-per-replica", type=float, default=1.0, metavar="G", help="default %(default)s")
    p.add_argument("--cpus-per-replica", type=float, default=1.0, metavar="C",
                   help="CPUs of a replica where there is no GPU (default %(default)s)")
    p.add_argument("--host", default=DEFAULT_HOST,
                   help="address to listen on (default %(default)s: this computer only; see docs/server.md "
                        "for SSH tunnels and TLS)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="default %(default)s")
    p.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB, metavar="MB",
                   help="largest picture upload (default %(default)s)")
    p.add_argument("--token-file", default=None, metavar="FILE",
                   help="where the token is kept (default: the user config folder)")
    p.set_defaults(func=cmd_serve)


def add_client_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("server (make the pictures on another machine, docs/server.md)")
    group.add_argument("--server", metavar="URL", help="a StyleAligned server, e.g. http://127.0.0.1:8765")
    group.add_argument("--token-file", metavar="FILE",
                       help="the server's token (default: this computer's server token, "
                            "in the user config folder)")


def picture_maker(args):
    """The maker ``generate`` uses: the server of ``--server``, or None for this computer.
    Raises ValueError (one line) for a token that cannot be read."""
    if not getattr(args, "server", None):
        return None
    from .auth import default_token_path, read_token
    from .client import ServerEngine

    return ServerEngine(args.server, read_token(args.token_file or default_token_path()))


def cmd_serve(args) -> int:
    try:
        import ray  # noqa: F401
        from ray import serve
    except ImportError:
        raise ValueError("the server needs Ray: pip install 'stylealigned-desktop[server]'") from None
    from .launch import start

    options = ServerOptions(
        models=tuple(args.model or [DEFAULT_MODEL]), address=args.address, replicas=args.replicas,
        gpus_per_replica=args.gpus_per_replica, cpus_per_replica=args.cpus_per_replica, host=args.host,
        port=args.port, max_upload_mb=args.max_upload_mb, token_file=args.token_file,
        ray_init={} if args.address else {"include_dashboard": False},
    )
    started = start(options)
    where = f"{started.replicas} replica(s)" + (
        f", {started.gpus_per_replica:g} GPU each" if started.gpus_per_replica else " on CPU")
    print(f"StyleAligned server at {started.url} ({where}); models: {', '.join(options.models)}")
    if started.token_created:
        print(f"token (shown once; kept in {started.token_path}):\n  {started.token}")
    else:
        print(f"token: in {started.token_path}")
    print("Ctrl+C stops it.", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("stopping", file=sys.stderr)
    finally:
        serve.shutdown()
    return 0
