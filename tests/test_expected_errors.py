"""Which errors are logged as one line (the user's to fix) and which with a traceback (bugs)."""

from __future__ import annotations

from stylealigned_desktop.engine.errors import is_expected_error
from stylealigned_desktop.engine.generator import GenerationError
from stylealigned_desktop.engine.images import PictureError
from stylealigned_desktop.engine.lora import LoraError
from stylealigned_desktop.server.client import ServerError


def test_refusals_are_expected_and_faults_are_not():
    for refusal in (LoraError("style.safetensors is not a LoRA for SDXL"), PictureError("not a picture"),
                    GenerationError("out of memory for the reference alone"),
                    ServerError("the server refused the LoRA")):
        assert is_expected_error(refusal), refusal
    for fault in (RuntimeError("mat1 and mat2 shapes cannot be multiplied"), KeyError("down_blocks"),
                  AttributeError("'NoneType' object has no attribute 'unet'")):
        assert not is_expected_error(fault), fault
