"""Pictures made on another machine: a Ray Serve application around the engine, and its client.

``wire`` (the JSON forms of requests and events), ``auth`` (the bearer token), ``sharding``
(how a set splits over replicas and how their streams merge) and ``client`` (the HTTP streaming
client, an engine-like ``generate``) need neither Ray nor FastAPI: the desktop app and the CLI
use them. ``replica``, ``ingress`` (with ``uploads``, the picture store) and ``launch`` are the
server; they need the optional extra ``stylealigned-desktop[server]`` (``ray[serve]``). The
commands (``stylealigned serve``, ``generate --server``) are in ``cli/``. Nothing under
``engine/`` or ``session/`` imports this package.
"""
