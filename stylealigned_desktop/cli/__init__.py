"""The command line: ``stylealigned generate|evaluate|models|invert|preprocess|serve|export ...``.

One module per family of sub-commands (:mod:`.generate`, :mod:`.evaluate`, :mod:`.prepare` for
invert and preprocess, :mod:`.models`, :mod:`.serve`, :mod:`.export`), the shared argument helpers in
:mod:`.common`. Bad input gets a one-line error and exit code 2, never a traceback. Heavy imports
(torch, diffusers, Ray, the server's HTTP client) happen inside the commands, so ``--help`` is
instant and the command line works without the ``[server]`` extra.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from .. import __version__
from ..library_errors import describe_library_failure, library_failure
from .common import EXIT_USAGE, OneLineParser, UsageError
from .evaluate import add_evaluate_parser
from .export import add_export_parser
from .generate import add_generate_parser, build_generate_request, split_weight
from .models import add_models_parser
from .prepare import add_invert_parser, add_preprocess_parser
from .serve import add_serve_parser

__all__ = ["UsageError", "build_generate_request", "build_parser", "main", "split_weight"]


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="stylealigned", description="Generate and measure sets of pictures that share one style (StyleAligned on SDXL).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_generate_parser(subparsers)
    add_evaluate_parser(subparsers)
    add_invert_parser(subparsers)
    add_preprocess_parser(subparsers)
    add_models_parser(subparsers)
    add_serve_parser(subparsers)
    add_export_parser(subparsers)
    return parser


def _print_paths_as_given() -> None:
    """Paths the OS gave as bytes that are not UTF-8 arrive as surrogate escapes: print them
    back as the same bytes (on a UTF-8 terminal), never fail on them."""
    for stream in (sys.stdout, sys.stderr):
        encoding = (getattr(stream, "encoding", "") or "").lower().replace("-", "")
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="surrogateescape" if encoding == "utf8" else "backslashreplace")


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _print_paths_as_given()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UsageError as error:
        print(f"stylealigned: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("stylealigned: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if args.debug:
            raise
        failure = library_failure(error)
        if failure is not None:
            print(f"stylealigned: error: {describe_library_failure(failure)} (run with --debug "
                  "for details)", file=sys.stderr)
            return 1
        print(f"stylealigned: unexpected error: {type(error).__name__}: {error} (run with --debug for details)",
              file=sys.stderr)
        return 1
