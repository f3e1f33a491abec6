"""Starting the server: a Ray cluster (started, or joined with ``address``), Serve on
``host:port``, and the application (``Ingress`` in front of ``EngineReplica`` replicas)."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..paths import cache_dir
from .auth import default_token_path, load_or_create_token, token_digest

APP_NAME = "stylealigned"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_MAX_UPLOAD_MB = 50.0
DEFAULT_MAX_STORE_MB = 2000.0
DEFAULT_KEEP_UPLOADS_DAYS = 7.0
DEFAULT_MAX_LORA_MB = 2000.0
DEFAULT_MAX_LORA_STORE_MB = 20000.0


@dataclass(frozen=True)
class ServerOptions:
    """What ``stylealigned serve`` takes. ``replicas`` None: one per GPU group of
    ``gpus_per_replica``, or one on a machine without GPUs. ``port`` 0: a free port (see
    :func:`start`)."""

    models: tuple[str, ...] = ("stabilityai/stable-diffusion-xl-base-1.0",)
    address: str | None = None
    replicas: int | None = None
    gpus_per_replica: float = 1.0
    cpus_per_replica: float = 1.0
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB
    max_store_mb: float = DEFAULT_MAX_STORE_MB
    """Uploaded pictures kept at most (the least recently used are deleted first)."""
    keep_uploads_days: float = DEFAULT_KEEP_UPLOADS_DAYS
    """Uploaded pictures and LoRAs unused this long are deleted."""
    max_lora_mb: float = DEFAULT_MAX_LORA_MB
    """The largest LoRA file a client may upload."""
    max_lora_store_mb: float = DEFAULT_MAX_LORA_STORE_MB
    """Uploaded LoRA files kept at most (the least recently used are deleted first)."""
    token_file: str | None = None
    upload_dir: str | None = None
    replica_wait_s: float = 120.0
    ray_init: dict = field(default_factory=dict)
    """Extra ``ray.init`` arguments (tests: ``num_cpus``, ``include_dashboard``)."""


@dataclass(frozen=True)
class Started:
    url: str
    token: str
    token_created: bool
    token_path: Path
    replicas: int
    gpus_per_replica: float


def build_app(options: ServerOptions, digest: str, replicas: int, use_gpus: bool):
    """The Serve application: ``Ingress`` bound to ``replicas`` ``EngineReplica`` replicas."""
    from .ingress import Ingress
    from .replica import EngineReplica

    resources = {"num_gpus": options.gpus_per_replica} if use_gpus else {"num_cpus": options.cpus_per_replica}
    engine = EngineReplica.options(num_replicas=replicas, ray_actor_options=resources)
    config = {
        "token_digest": digest,
        "models": list(options.models),
        "upload_dir": options.upload_dir or str(cache_dir() / "server-pictures"),
        "max_upload_bytes": int(options.max_upload_mb * 1e6),
        "max_store_bytes": int(options.max_store_mb * 1e6),
        "keep_uploads_s": options.keep_uploads_days * 86400.0,
        "max_lora_bytes": int(options.max_lora_mb * 1e6),
        "max_lora_store_bytes": int(options.max_lora_store_mb * 1e6),
        "replica_wait_s": options.replica_wait_s,
    }
    return Ingress.bind(engine.bind(list(options.models)), config)


def free_port(host: str) -> int:
    """A port nobody listens on at ``host`` now. Serve's proxy does not tell which port it bound
    for port 0, so the server asks the system for one first and gives Serve that."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def start(options: ServerOptions) -> Started:
    """Start (or join) Ray, start Serve and deploy; returns once every replica has loaded. The
    URL it returns has the port the server listens on (a free one for ``port`` 0)."""
    import ray
    from ray import serve

    if options.port == 0:
        options = replace(options, port=free_port(options.host))

    token_path = Path(options.token_file).expanduser() if options.token_file else None
    token, created = load_or_create_token(token_path)

    if not ray.is_initialized():
        ray.init(address=options.address, log_to_driver=False, **options.ray_init)
    gpus = ray.cluster_resources().get("GPU", 0)
    use_gpus = gpus >= options.gpus_per_replica > 0
    replicas = options.replicas or (max(1, int(gpus // options.gpus_per_replica)) if use_gpus else 1)
    serve.start(http_options={"host": options.host, "port": options.port})
    serve.run(build_app(options, token_digest(token), replicas, use_gpus), name=APP_NAME, route_prefix="/")
    host = f"[{options.host}]" if ":" in options.host else options.host
    return Started(url=f"http://{host}:{options.port}", token=token, token_created=created,
                   token_path=token_path or default_token_path(), replicas=replicas,
                   gpus_per_replica=options.gpus_per_replica if use_gpus else 0)
