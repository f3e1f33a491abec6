"""The model's identity in the inversion cache's keys (engine/models.py): the whole string, for
every kind of base model, VAE and LoRAs. The key is kept on disk between runs and sessions, so
its form is pinned, not only that it changes; the expectations are spelled out here from
hashlib and os.stat, independently of the code."""

import hashlib
import os

from stylealigned_desktop.engine.models import model_identity, vae_identity
from stylealigned_desktop.engine.request import Lora


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write(path, data: bytes, mtime: int):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))
    return path


def test_a_tiny_model_is_named_with_its_seed():
    assert model_identity(" tiny-sd15 ") == "tiny-sd15-v1-seed0"
    assert model_identity("tiny", None, ()) == "tiny-v1-seed0"


def test_a_folder_model_is_named_by_its_first_four_unet_weights(tmp_path):
    folder = tmp_path / "model"
    write(folder / "model_index.json", b"{}", 1)
    for k, name in enumerate(["e", "b", "d", "a", "c"]):
        write(folder / "unet" / f"{name}.safetensors", b"x" * (k + 1), 1_000_000 + k)
    write(folder / "unet" / "config.json", b"{}", 5)
    stamp = "a.safetensors:4:1000003:b.safetensors:2:1000001:c.safetensors:5:1000004:d.safetensors:3:1000002"
    assert model_identity(str(folder)) == f"folder:{folder.resolve()}:{stamp}"
    # weights in another format: every file of unet/ is stamped
    other = tmp_path / "other"
    write(other / "model_index.json", b"{}", 1)
    write(other / "unet" / "weights.bin", b"12345", 2_000_000)
    write(other / "unet" / "config.json", b"{}", 3_000_000)
    assert model_identity(str(other)) == f"folder:{other}:config.json:2:3000000:weights.bin:5:2000000"


def test_a_single_file_model_is_named_by_its_path_size_and_time(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    write(tmp_path / "sdxl.safetensors", b"123", 1_234_567)
    assert model_identity("~/sdxl.safetensors") == f"file:{tmp_path.resolve()}/sdxl.safetensors:3:1234567"


def test_a_vae_is_named_by_its_content_and_a_hub_vae_by_its_id(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    file = write(tmp_path / "vae.safetensors", b"vae weights", 1)
    assert vae_identity("~/vae.safetensors") == f"sha256:{sha(file)}"
    assert vae_identity("madebyollin/sdxl-vae-fp16-fix") == "hub:madebyollin/sdxl-vae-fp16-fix"
    folder = tmp_path / "vae"
    config = write(folder / "config.json", b'{"a": 1}', 1)
    weights = write(folder / "diffusion_pytorch_model.safetensors", b"w", 1)
    write(folder / "notes.txt", b"not weights", 1)
    (folder / "x.safetensors").mkdir()  # a folder by that name: nothing to hash
    assert vae_identity(str(folder)) == (f"folder:config.json={sha(config)},"
                                         f"diffusion_pytorch_model.safetensors={sha(weights)},"
                                         "x.safetensors=unreadable")


def test_the_model_identity_joins_the_base_the_vae_and_the_loras(tmp_path):
    vae = write(tmp_path / "vae.safetensors", b"vae", 1)
    first = write(tmp_path / "one.safetensors", b"lora one", 1)
    second = write(tmp_path / "two.safetensors", b"lora two", 1)
    loras = (Lora(str(first), 0.8), Lora(str(second), -0.5))
    assert model_identity("tiny", vae=str(vae), loras=loras) == (
        f"tiny-v1-seed0|vae:sha256:{sha(vae)}|loras:{sha(first)}@0.8,{sha(second)}@-0.5")
    assert model_identity("tiny", loras=loras[1:]) == f"tiny-v1-seed0|loras:{sha(second)}@-0.5"
    assert model_identity("tiny", vae=str(vae)) == f"tiny-v1-seed0|vae:sha256:{sha(vae)}"
