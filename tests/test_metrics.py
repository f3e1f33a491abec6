"""Metrics: DINO set consistency, CLIP text alignment, Inception Score.

The models are tiny random-weight models of the real classes (ViTModel, CLIPModel, torchvision's
inception_v3), saved to temporary folders and loaded back through the real loading code.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from stylealigned_desktop.evaluation import metrics

# The tiny models (also used by test_evaluation.py and the frozen build's smoke).
from .metric_models import build_tiny_clip, build_tiny_dino, build_tiny_inception  # noqa: E402

_BUILT: dict[str, Path] = {}


def _built_once(name: str, build) -> Path:
    # test_evaluation re-exports these fixtures; pytest gives each module its own fixture
    # definition, so the session cache is here.
    if name not in _BUILT:
        _BUILT[name] = build()
    return _BUILT[name]


@pytest.fixture(scope="session")
def tiny_dino_dir(tmp_path_factory) -> Path:
    return _built_once("dino", lambda: build_tiny_dino(tmp_path_factory.mktemp("dino")))


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory) -> Path:
    return _built_once("clip", lambda: build_tiny_clip(tmp_path_factory.mktemp("clip")))


@pytest.fixture(scope="session")
def tiny_inception_file(tmp_path_factory) -> Path:
    return _built_once("inception", lambda: build_tiny_inception(
        tmp_path_factory.mktemp("inception") / "inception.safetensors"))


def drawn_picture(kind: int, size: int = 48) -> Image.Image:
    """Distinct test pictures: a coloured background with a shape that depends on ``kind``."""
    colors = [(200, 40, 40), (40, 160, 60), (30, 60, 200), (230, 200, 30), (120, 40, 160)]
    image = Image.new("RGB", (size, size), colors[kind % len(colors)])
    draw = ImageDraw.Draw(image)
    inset = 4 + 3 * kind
    box = [inset, inset, size - inset, size - inset]
    if kind % 2:
        draw.ellipse(box, fill=(255, 255, 255))
    else:
        draw.rectangle(box, fill=(0, 0, 0))
    return image


def naive_mean_pairwise_cosine(rows: np.ndarray) -> float:
    """Loops over every unordered pair: the textbook definition."""
    values = []
    for i, j in itertools.combinations(range(len(rows)), 2):
        a, b = rows[i], rows[j]
        values.append(float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))))
    return sum(values) / len(values)


# ---------------------------------------------------------------------------------------------
# Metrics on arrays
# ---------------------------------------------------------------------------------------------


def test_set_consistency_matches_a_naive_pairwise_computation():
    rng = np.random.default_rng(0)
    sets = [rng.normal(size=(4, 16)), rng.normal(size=(5, 16)) + 2.0, rng.normal(size=(2, 16))]
    mean, std, per_set = metrics.set_consistency(sets)
    expected = [naive_mean_pairwise_cosine(s) for s in sets]
    assert per_set == pytest.approx(expected, abs=1e-12)
    assert mean == pytest.approx(sum(expected) / 3, abs=1e-12)
    mu = sum(expected) / 3
    assert std == pytest.approx(math.sqrt(sum((e - mu) ** 2 for e in expected) / 3), abs=1e-12)


def test_set_consistency_of_identical_images_is_one_and_does_not_depend_on_order():
    rng = np.random.default_rng(1)
    row = rng.normal(size=24)
    same = np.stack([row, row, row, row])
    assert metrics.mean_pairwise_cosine(same) == pytest.approx(1.0, abs=1e-12)
    # Scaling a row keeps its direction: still 1.
    assert metrics.mean_pairwise_cosine(same * [[1.0], [3.0], [0.5], [7.0]]) == pytest.approx(1.0)

    varied = rng.normal(size=(5, 24))
    reference = metrics.mean_pairwise_cosine(varied)
    for perm in ([4, 3, 2, 1, 0], [1, 0, 3, 2, 4], [2, 4, 0, 1, 3]):
        assert metrics.mean_pairwise_cosine(varied[perm]) == pytest.approx(reference, abs=1e-12)
    # Swapping the order of the sets does not change the mean over sets either.
    sets = [varied, same, varied[:3]]
    assert metrics.set_consistency(sets[::-1]).mean == pytest.approx(
        metrics.set_consistency(sets).mean, abs=1e-12)


def test_set_consistency_rejects_bad_input():
    with pytest.raises(ValueError, match="at least 2 images"):
        metrics.mean_pairwise_cosine(np.ones((1, 4)))
    with pytest.raises(ValueError, match="all zeros"):
        metrics.mean_pairwise_cosine(np.array([[1.0, 0.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="at least one set"):
        metrics.set_consistency([])


def test_text_alignment_is_the_rowwise_cosine_and_clip_score_is_clamped_and_scaled():
    images = np.array([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 2.0, 0.0], [1.0, 0.0, 0.0]])
    texts = np.array([[2.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 5.0]])
    result = metrics.text_alignment(images, texts)
    expected = [1.0, 1 / math.sqrt(2), -1.0, 0.0]
    assert result.per_image == pytest.approx(expected, abs=1e-12)
    assert result.mean == pytest.approx(sum(expected) / 4, abs=1e-12)
    # torchmetrics: max(100 * cos, 0) per image, then the mean: -1 counts as 0.
    assert result.clip_score_100 == pytest.approx((100 + 100 / math.sqrt(2) + 0 + 0) / 4)
    with pytest.raises(ValueError, match="same shape"):
        metrics.text_alignment(images, texts[:2])


def test_inception_score_matches_a_hand_computed_value():
    # A classifier with known outputs on three images, over three classes.
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]])
    marginal = [(0.7 + 0.1 + 0.2) / 3, (0.2 + 0.8 + 0.2) / 3, (0.1 + 0.1 + 0.6) / 3]
    kl = [sum(p * math.log(p / m) for p, m in zip(row, marginal, strict=True)) for row in probs]
    expected = math.exp(sum(kl) / 3)
    result = metrics.inception_score(probs, splits=10)
    assert result.splits == 1  # 3 images: one split
    assert result.mean == pytest.approx(expected, rel=1e-12)
    assert result.std == 0.0

    # Confident and evenly spread over k classes: IS = k exactly; identical outputs: IS = 1.
    one_hot = np.eye(4)[np.arange(48) % 4]  # 4 splits of 12, each 3 of every class
    assert metrics.inception_score(one_hot, splits=4) == pytest.approx((4.0, 0.0, 4))
    assert metrics.inception_score(np.full((12, 5), 0.2)).mean == pytest.approx(1.0)


def test_inception_score_splits_are_consecutive_and_fewer_for_few_images():
    assert metrics.effective_splits(500, 10) == 10
    assert metrics.effective_splits(25, 10) == 2
    assert metrics.effective_splits(9, 10) == 1
    # 25 images, 2 splits of 13 and 12: the first all class 0/1 half-half, the second all class 2.
    probs = np.zeros((25, 3))
    probs[:13:2, 0] = 1.0
    probs[1:13:2, 1] = 1.0
    probs[13:, 2] = 1.0
    result = metrics.inception_score(probs, splits=10)
    # Split 1: 7 of class 0 and 6 of class 1 -> exp(-(7/13 ln(7/13) + 6/13 ln(6/13))); split 2: 1.
    first = math.exp(-(7 / 13 * math.log(7 / 13) + 6 / 13 * math.log(6 / 13)))
    assert result.splits == 2
    assert result.mean == pytest.approx((first + 1.0) / 2, rel=1e-12)
    assert result.std == pytest.approx(abs(first - 1.0) / 2, rel=1e-12)
    with pytest.raises(ValueError, match="probability distribution"):
        metrics.inception_score(np.array([[0.5, 0.6]]))


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------


def test_dino_embeddings_are_the_cls_token_of_a_plain_forward(tiny_dino_dir):
    from transformers import ViTImageProcessor, ViTModel

    pictures = [drawn_picture(k) for k in range(3)]
    dino = metrics.load_dino(str(tiny_dino_dir), "cpu")
    embeddings = dino.embed(pictures)

    model = ViTModel.from_pretrained(str(tiny_dino_dir)).eval()
    processor = ViTImageProcessor.from_pretrained(str(tiny_dino_dir))
    with torch.no_grad():
        hidden = model(**processor(images=pictures, return_tensors="pt")).last_hidden_state
    np.testing.assert_allclose(embeddings, hidden[:, 0].numpy(), rtol=1e-5, atol=1e-6)
    assert metrics.images_set_consistency(pictures, str(tiny_dino_dir), "cpu") == pytest.approx(
        naive_mean_pairwise_cosine(hidden[:, 0].double().numpy()), abs=1e-6)


def test_dino_model_is_loaded_once_per_source_and_device(tiny_dino_dir, monkeypatch):
    first = metrics.load_dino(str(tiny_dino_dir), "cpu")
    assert metrics.load_dino(str(tiny_dino_dir) + "/", "cpu") is first
    monkeypatch.chdir(tiny_dino_dir.parent)
    assert metrics.load_dino(f"./{tiny_dino_dir.name}", "cpu") is first
    metrics.clear_model_cache()
    assert metrics.load_dino(str(tiny_dino_dir), "cpu") is not first


def test_identical_pictures_have_consistency_one_and_order_does_not_matter(tiny_dino_dir):
    dino = metrics.load_dino(str(tiny_dino_dir), "cpu")
    picture = drawn_picture(2)
    same = dino.embed([picture, picture.copy(), picture.copy()])
    assert metrics.mean_pairwise_cosine(same) == pytest.approx(1.0, abs=1e-6)

    pictures = [drawn_picture(k) for k in range(4)]
    forward = metrics.mean_pairwise_cosine(dino.embed(pictures))
    backward = metrics.mean_pairwise_cosine(dino.embed(pictures[::-1]))
    assert forward == pytest.approx(backward, abs=1e-6)
    assert forward < 0.999999  # distinct pictures are not identical to a random ViT either


def test_clip_text_alignment_equals_the_models_own_logits(tiny_clip_dir):
    from transformers import CLIPModel, CLIPProcessor

    pictures = [drawn_picture(k) for k in range(3)]
    texts = ["A house", "A temple", "A dog " * 60]  # the last is longer than 77 tokens
    clip = metrics.load_clip(str(tiny_clip_dir), "cpu")
    result = metrics.text_alignment(clip.embed_images(pictures), clip.embed_texts(texts))

    # Independently: CLIPModel's forward gives logit_scale * cosine for every image/text pair.
    model = CLIPModel.from_pretrained(str(tiny_clip_dir)).eval()
    processor = CLIPProcessor.from_pretrained(str(tiny_clip_dir))
    inputs = processor(text=texts, images=pictures, return_tensors="pt", padding=True,
                       truncation=True)
    with torch.no_grad():
        output = model(**inputs)
        cosines = (output.logits_per_image.diagonal() / model.logit_scale.exp()).double().numpy()
    np.testing.assert_allclose(result.per_image, cosines, rtol=1e-5, atol=1e-6)
    assert result.mean == pytest.approx(float(cosines.mean()), abs=1e-6)
    assert result.clip_score_100 == pytest.approx(float(np.maximum(100 * cosines, 0).mean()),
                                                  abs=1e-4)


def test_inception_probabilities_match_torchvision_and_load_from_safetensors_and_pth(
        tiny_inception_file, tmp_path):
    from safetensors.torch import load_file
    from torchvision.models import Inception_V3_Weights, inception_v3

    pictures = [drawn_picture(0, 64), drawn_picture(3, 80)]
    classifier = metrics.load_inception(str(tiny_inception_file), "cpu")
    probs = classifier.probabilities(pictures)
    assert probs.shape == (2, 1000)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)

    model = inception_v3(weights=None, aux_logits=False, init_weights=False, transform_input=True)
    model.load_state_dict(load_file(str(tiny_inception_file)))
    model.eval()
    transform = Inception_V3_Weights.IMAGENET1K_V1.transforms()
    with torch.no_grad():
        logits = model(torch.stack([transform(p) for p in pictures]))
    np.testing.assert_allclose(probs, torch.softmax(logits.double(), 1).numpy(), atol=1e-6)

    # A classifier with known outputs: zero weights, fixed bias -> softmax(bias) for any picture.
    state = load_file(str(tiny_inception_file))
    state["fc.weight"] = torch.zeros_like(state["fc.weight"])
    bias = torch.zeros(1000)
    bias[:3] = torch.tensor([2.0, 1.0, 0.5])
    state["fc.bias"] = bias
    known = tmp_path / "known.pth"
    torch.save(state, known)
    known_probs = metrics.load_inception(str(known), "cpu").probabilities(pictures)
    expected = torch.softmax(bias.double(), 0).numpy()
    np.testing.assert_allclose(known_probs, np.stack([expected, expected]), atol=1e-9)
    # Every picture has the marginal's distribution: KL 0, IS exactly 1.
    assert metrics.inception_score(known_probs).mean == pytest.approx(1.0, abs=1e-9)


def test_missing_models_say_how_to_get_them(tmp_path):
    with pytest.raises(metrics.MetricModelError, match="hf download facebook/dino-vitb8"):
        metrics.load_dino("facebook/dino-vitb8", "cpu")
    with pytest.raises(metrics.MetricModelError, match="openai/clip-vit-large-patch14"):
        metrics.load_clip(metrics.DEFAULT_CLIP, "cpu")
    with pytest.raises(metrics.MetricModelError, match="folder not found: ./no-such-dino"):
        metrics.load_dino("./no-such-dino", "cpu")
    with pytest.raises(metrics.MetricModelError, match="not found"):
        metrics.load_inception(str(tmp_path / "missing.safetensors"), "cpu")
    wrong = tmp_path / "weights.ckpt"
    wrong.write_bytes(b"not weights")
    with pytest.raises(metrics.MetricModelError, match=r"\.safetensors or \.pth"):
        metrics.load_inception(str(wrong), "cpu")
    not_inception = tmp_path / "other.safetensors"
    from safetensors.torch import save_file

    save_file({"fc.weight": torch.zeros(10, 2048), "fc.bias": torch.zeros(10)}, str(not_inception))
    with pytest.raises(metrics.MetricModelError, match="not a state dict of torchvision"):
        metrics.load_inception(str(not_inception), "cpu")
    assert not metrics.hf_model_available("facebook/dino-vitb8")
    assert not metrics.hf_model_available(str(tmp_path / "nothing"))


def test_published_inception_weights_offline_explain_the_download(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(metrics.MetricModelError, match=r"offline.*inception_v3_google"):
        metrics.load_inception("torchvision", "cpu")


def test_availability_without_loading(tiny_dino_dir, tmp_path):
    assert metrics.hf_model_available(str(tiny_dino_dir))
    assert metrics.dino_unavailable_reason(str(tiny_dino_dir)) is None
    assert "hf download facebook/dino-vitb8" in metrics.dino_unavailable_reason()
    assert "has no config.json" in metrics.dino_unavailable_reason(str(tmp_path))
