"""The inputs of packaging/smoke.sh, made from the source tree with the build's environment: a
reference picture, a LoRA for the tiny model (tests/loras.py), the tiny metric models
(tests/metric_models.py) and a two-panel session for the window, at 64x64 with 2 steps.

    python packaging/smoke_inputs.py FOLDER
"""

import sys
from pathlib import Path

from PIL import Image, ImageDraw

from stylealigned_desktop.session import store
from stylealigned_desktop.session.model import Session
from tests.loras import tiny_lora_state, write_diffusers_lora
from tests.metric_models import build_tiny_clip, build_tiny_dino, build_tiny_inception


def main(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    picture = Image.new("RGB", (64, 64), (40, 90, 160))  # shapes: edges for the canny map
    draw = ImageDraw.Draw(picture)
    draw.ellipse([8, 8, 40, 40], fill=(240, 200, 40))
    draw.rectangle([30, 36, 58, 58], fill=(200, 40, 40))
    picture.save(folder / "reference.png")
    write_diffusers_lora(folder / "lora.safetensors", tiny_lora_state())
    build_tiny_dino(folder / "dino")
    build_tiny_clip(folder / "clip").rename(folder / "clip-model")
    build_tiny_inception(folder / "inception.safetensors")

    session = Session()
    for prompt in ("a harbour at dawn", "a lighthouse in the storm"):
        session.add_panel(prompt)
    session.set_style_text("ink sketch")
    session.update_settings(width=64, height=64, steps=2)
    store.save_session_as(session, folder / "Harbour.stylealigned")
    session.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
