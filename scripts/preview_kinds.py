"""The picture of the user guide's preview kinds: one panel at the same step through the latent
factors and through the tiny autoencoder, and the finished picture (the full VAE).

    .venv/bin/python scripts/preview_kinds.py [--out docs/images/previews-factors-vs-tiny.png]

It runs the built-in ``tiny`` model (random weights): its tiny autoencoder is random too, so
that preview shows noise, and the finished picture is noise as well; what the picture shows is
the size and sharpness of each kind, not a drawing. With SDXL and TAESDXL downloaded, pass
``--model`` with the SDXL source to see real previews.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--step", type=int, default=4, help="the step whose previews are shown")
    parser.add_argument("--out", default=str(ROOT / "docs" / "images" / "previews-factors-vs-tiny.png"))
    args = parser.parse_args()

    from PIL import Image, ImageDraw

    from stylealigned_desktop.engine import events as ev
    from stylealigned_desktop.engine.generator import Engine
    from stylealigned_desktop.engine.request import GeneratedReference, Panel, Sampling, SetRequest

    engine = Engine(preview_budget=float("inf"))
    shown = {}
    for kind in ("factors", "tiny"):
        request = SetRequest(model=args.model, style=GeneratedReference("a lighthouse, flat vector illustration", 5),
                             panels=(Panel("a fox in the snow, flat vector illustration", 6),),
                             sampling=Sampling(steps=args.steps, width=args.size, height=args.size,
                                               scheduler="euler"),
                             previews=kind)
        events = []
        result = engine.generate(request, events.append)
        shown[kind] = next(e.image for e in events if isinstance(e, ev.Preview) and e.index == 0
                           and e.step == args.step)
        shown["final"] = result.panels[0]
    size = args.size
    labels = {"factors": f"latent factors, step {args.step} ({shown['factors'].width}x{shown['factors'].height})",
              "tiny": f"tiny autoencoder, step {args.step} ({shown['tiny'].width}x{shown['tiny'].height})",
              "final": "finished picture (full VAE)"}
    sheet = Image.new("RGB", (3 * size + 40, size + 40), (40, 40, 44))
    draw = ImageDraw.Draw(sheet)
    for k, key in enumerate(("factors", "tiny", "final")):
        picture = shown[key].resize((size, size), Image.Resampling.NEAREST)  # the factors' pixels as they are
        sheet.paste(picture, (10 + k * (size + 10), 30))
        draw.text((10 + k * (size + 10), 8), labels[key], fill=(230, 230, 230))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
