"""``stylealigned export``: a session's or a run folder's storyboard deliverables (the PDF, the
animatic, the editor's timeline, the shot list, a Storyboarder project), made by the Qt-free
``export`` package the window uses too."""

from __future__ import annotations

import sys
from pathlib import Path

from .common import UsageError


def _frame_size(text: str) -> tuple[int, int]:
    import argparse

    width, sep, height = text.lower().partition("x")
    try:
        return int(width), int(height)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a frame size is WIDTHxHEIGHT, e.g. 1280x720, got {text!r}") from None


def add_export_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "export", help="storyboard PDF, animatic, timeline, shot list, Storyboarder project",
        description="Deliver a storyboard: from a session folder or a run folder made by generate "
                    "(with the panel notes of its prompts file). Give one or more outputs.")
    p.add_argument("source", metavar="SESSION_OR_RUN_FOLDER")
    p.add_argument("--pdf", metavar="FILE", help="the storyboard PDF")
    p.add_argument("--layout", type=int, choices=(1, 3, 6), default=3, help="panels per PDF page (default 3)")
    p.add_argument("--page", choices=("A4", "Letter"), default="A4")
    p.add_argument("--portrait", action="store_true", help="portrait pages (default landscape)")
    p.add_argument("--no-title-page", action="store_true")
    p.add_argument("--animatic", metavar="FILE", help="the animatic (MP4) and its .srt")
    p.add_argument("--size", type=_frame_size, default=(1280, 720), metavar="WxH",
                   help="animatic frame size (default 1280x720)")
    p.add_argument("--fps", type=float, default=24.0, help="animatic and timeline frame rate (default 24)")
    p.add_argument("--crossfade", type=float, default=0.0, metavar="SECONDS", help="cross-fade at each cut")
    p.add_argument("--captions", action="store_true", help="burn the dialogue into the animatic")
    p.add_argument("--numbers", action="store_true", help="burn the panel numbers into the animatic")
    p.add_argument("--otio", metavar="FILE", help="OpenTimelineIO timeline of the cuts")
    p.add_argument("--shot-list", metavar="FILE", help="shot list CSV")
    p.add_argument("--storyboarder", metavar="DIR", help="a Storyboarder project folder (new or empty)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_export)


def cmd_export(args) -> int:
    from ..export.animatic import AnimaticOptions, write_animatic
    from ..export.board import ExportError, load_board
    from ..export.pdf import PdfOptions, write_pdf
    from ..export.storyboarder import write_storyboarder
    from ..export.timeline import write_otio, write_shot_list

    if not any((args.pdf, args.animatic, args.otio, args.shot_list, args.storyboarder)):
        raise UsageError("nothing to export: give --pdf, --animatic, --otio, --shot-list and/or --storyboarder")
    written: list[Path] = []
    try:
        board = load_board(args.source)
        for target in (args.pdf, args.animatic, args.otio, args.shot_list):
            if target:
                _make_parent(Path(target))
        if args.pdf:
            for warning in write_pdf(board, args.pdf, PdfOptions(
                    layout=args.layout, page=args.page, landscape=not args.portrait,
                    title_page=not args.no_title_page)):
                print(f"  note: {warning}", file=sys.stderr)
            written.append(Path(args.pdf))
        if args.animatic:
            options = AnimaticOptions(size=args.size, fps=args.fps, crossfade=args.crossfade,
                                      captions=args.captions, numbers=args.numbers)
            written += write_animatic(board, args.animatic, options, progress=_progress(args.quiet))
        if args.otio:
            written.append(write_otio(board, args.otio, fps=args.fps))
        if args.shot_list:
            written.append(write_shot_list(board, args.shot_list, fps=args.fps))
        if args.storyboarder:
            written.append(write_storyboarder(board, args.storyboarder, fps=args.fps))
    except ExportError as error:
        raise UsageError(str(error)) from None
    if not args.quiet:
        print(f"wrote {', '.join(str(p) for p in written)}", file=sys.stderr)
    return 0


def _make_parent(target: Path) -> None:
    try:
        target.expanduser().parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"{target.parent}: cannot be created ({error.strerror or error})") from None


def _progress(quiet: bool):
    if quiet:
        return None
    state = {}

    def report(done: int, total: int) -> None:
        from tqdm import tqdm

        bar = state.get("bar")
        if bar is None:
            bar = state["bar"] = tqdm(total=total, desc="animatic", unit="frame", file=sys.stderr)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return report
