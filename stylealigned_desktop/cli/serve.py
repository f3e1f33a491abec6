"""``stylealigned serve``: a picture server for other computers (docs/server.md).

Ray is imported only when the command runs: the rest of the command line, and ``--help``, work
without the ``[server]`` extra.
"""

from __future__ import annotations

import signal
import sys
import threading

from ..server.launch import (
    DEFAULT_HOST,
    DEFAULT_KEEP_UPLOADS_DAYS,
    DEFAULT_MAX_LORA_MB,
    DEFAULT_MAX_LORA_STORE_MB,
    DEFAULT_MAX_STORE_MB,
    DEFAULT_MAX_UPLOAD_MB,
    DEFAULT_PORT,
    ServerOptions,
)
from .common import DEFAULT_MODEL, UsageError, check_model_source, positive_int

INSTALL_HINT = "the server needs Ray Serve: pip install 'stylealigned-desktop[server]'"


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
    p.add_argument("--replicas", type=positive_int, default=None, metavar="N",
                   help="engine replicas (default: one per GPU; one on a machine without GPUs)")
    p.add_argument("--gpus-per-replica", type=float, default=1.0, metavar="G", help="default %(default)s")
    p.add_argument("--cpus-per-replica", type=float, default=1.0, metavar="C",
                   help="CPUs of a replica where there is no GPU (default %(default)s)")
    p.add_argument("--host", default=DEFAULT_HOST,
                   help="address to listen on (default %(default)s: this computer only; see docs/server.md "
                        "for SSH tunnels and TLS)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help="default %(default)s; 0 picks a free port (the one printed)")
    p.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB, metavar="MB",
                   help="largest picture upload (default %(default)s)")
    p.add_argument("--max-store-mb", type=float, default=DEFAULT_MAX_STORE_MB, metavar="MB",
                   help="uploaded pictures kept at most; the least recently used go first (default %(default)s)")
    p.add_argument("--keep-uploads-days", type=float, default=DEFAULT_KEEP_UPLOADS_DAYS, metavar="D",
                   help="uploaded pictures and LoRAs unused this long are deleted (default %(default)s)")
    p.add_argument("--max-lora-mb", type=float, default=DEFAULT_MAX_LORA_MB, metavar="MB",
                   help="largest LoRA upload (default %(default)s)")
    p.add_argument("--max-lora-store-mb", type=float, default=DEFAULT_MAX_LORA_STORE_MB, metavar="MB",
                   help="uploaded LoRA files kept at most; the least recently used go first (default %(default)s)")
    p.add_argument("--token-file", default=None, metavar="FILE",
                   help="where the token is kept (default: the user config folder)")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args) -> int:
    models = tuple(args.model or [DEFAULT_MODEL])
    for model in models:
        check_model_source(model)
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be from 0 to 65535, got {args.port}")
    try:
        from ray import serve  # noqa: F401 (the extra is installed)
    except ImportError:
        raise UsageError(INSTALL_HINT) from None
    from ..server.launch import start

    options = ServerOptions(
        models=models, address=args.address, replicas=args.replicas,
        gpus_per_replica=args.gpus_per_replica, cpus_per_replica=args.cpus_per_replica, host=args.host,
        port=args.port, max_upload_mb=args.max_upload_mb, max_store_mb=args.max_store_mb,
        keep_uploads_days=args.keep_uploads_days, max_lora_mb=args.max_lora_mb,
        max_lora_store_mb=args.max_lora_store_mb, token_file=args.token_file,
        ray_init={} if args.address else {"include_dashboard": False},
    )
    stop = threading.Event()
    try:
        started = start(options)
        # SIGTERM (a service manager, `kill`) and SIGINT (Ctrl+C) stop the server; set after Ray's
        # start, which has handlers of its own. SIGINT explicitly: a server started in the
        # background by a script inherits an ignored SIGINT, and `kill -INT` must still stop it.
        for stop_signal in (signal.SIGTERM, signal.SIGINT):
            signal.signal(stop_signal, lambda *_: stop.set())
        where = f"{started.replicas} replica(s)" + (
            f", {started.gpus_per_replica:g} GPU each" if started.gpus_per_replica else " on CPU")
        print(f"StyleAligned server at {started.url} ({where}); models: {', '.join(models)}")
        if started.token_created:
            print(f"token (shown once; kept in {started.token_path}):\n  {started.token}")
        else:
            print(f"token: in {started.token_path}")
        print("Ctrl+C stops it.", flush=True)
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        print("stopping the server", file=sys.stderr, flush=True)
        _shutdown()
    return 0


def _shutdown() -> None:
    import ray
    from ray import serve

    if ray.is_initialized():
        serve.shutdown()
        ray.shutdown()
