"""The files a request names, checked before any model loads (no torch here).

The command line refuses a bad number in a moment, before it imports torch or builds a model
(``SetRequest`` checks its values when it is made); :func:`check_request_files` does the same for
the files: every reference, anchor and control picture is read as the engine will read it (a damaged
picture, a decompression or zTXt bomb, a FIFO, a folder are refused), every LoRA is a readable
``.safetensors`` LoRA for the model's base (its header; the base told from the model's config or
its file's tensor names when that needs no download), and a VAE file or folder is one the engine can load.
What needs the model (does this LoRA fit it?) is still checked by the engine, before any step.
"""

from __future__ import annotations

from .images import PictureError, load_picture
from .lora import check_lora_file
from .models import base_of_source, check_vae_source
from .request import ReferencePicture, SetRequest


def check_request_files(request: SetRequest) -> None:
    """ValueError (a PictureError, LoraError or ModelSourceError naming the file) for the first
    file of ``request`` the engine could not use."""
    for reference in request.references:
        if isinstance(reference, ReferencePicture):
            load_picture(reference.path).close()
    for character in request.characters:
        for picture in character.anchor_pictures:
            if picture is not None:
                try:
                    load_picture(picture).close()
                except PictureError as error:
                    raise PictureError(f"an anchor picture of [{character.name}]: {error}") from None
    for panel in request.panels:
        if panel.control is not None and panel.control.image:
            load_picture(panel.control.image).close()
    base = base_of_source(request.model) if request.loras else None
    for lora in request.loras:
        check_lora_file(lora, base)
    if request.vae:
        check_vae_source(request.vae)
