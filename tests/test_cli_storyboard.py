"""The command line's several references and panel sizes, parsed into the request (no model)."""

import pytest

from stylealigned_desktop.cli import UsageError, build_generate_request, build_parser, split_weight
from stylealigned_desktop.engine.request import GeneratedReference, ReferencePicture

from .cli_refusals import refused_generate

BASE = ["generate", "--model", "tiny", "--width", "128", "--height", "128", "--out", "unused"]


def _request(*args):
    return build_generate_request(build_parser().parse_args([*BASE, *args]))


@pytest.mark.parametrize("text, picture, expected", [
    ("a castle:2", False, ("a castle", 2.0)),
    ("a castle :0.25", False, ("a castle", 0.25)),
    ("a castle", False, ("a castle", 1.0)),
    ("a castle: at night", False, ("a castle: at night", 1.0)),
    ("a 16:9 frame", False, ("a 16:9 frame", 1.0)),
    ("ratio 16:9", False, ("ratio 16:9", 1.0)),  # a colon after a digit is text
    ("ratio 16:9 :2", False, ("ratio 16:9", 2.0)),
    ("a castle:0", False, ("a castle", 0.0)),
    ("moods/a.png:.5", True, ("moods/a.png", 0.5)),
    (r"C:\moods\a.png", True, (r"C:\moods\a.png", 1.0)),  # a Windows drive letter is no weight
    (r"C:\moods\a.png:3", True, (r"C:\moods\a.png", 3.0)),
    ("C:a.png", True, ("C:a.png", 1.0)),
    ("a.png:", True, ("a.png:", 1.0)),
])
def test_split_weight(text, picture, expected):
    assert split_weight(text, picture) == expected


def test_a_picture_whose_name_ends_in_colon_number_is_taken_whole(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "take:2").write_bytes(b"")
    assert split_weight("take:2", picture=True) == ("take:2", 1.0)
    assert split_weight("take:2:3", picture=True) == ("take:2", 3.0)


def test_several_weighted_references_in_command_line_order(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(b"")
    b.write_bytes(b"")
    request = _request("--reference-image", f"{a}:3", "--reference-prompt", "a castle:1", "--reference-image", str(b),
                       "--reference-caption", "red", "--reference-caption", "blue", "--style", "ink",
                       "--seed", "7", "--prompt", "a boat")
    first, castle, second = request.references
    assert isinstance(first, ReferencePicture) and (first.path, first.caption, first.weight) == (str(a), "red", 3.0)
    assert castle == GeneratedReference("a castle, ink", 7, 1.0)
    assert (second.path, second.caption, second.weight) == (str(b), "blue", 1.0)
    assert request.weights == (0.6, 0.2, 0.2)
    assert request.sampling.guidance == 10.0 and request.settings.share_group_norm  # a picture among them
    one = _request("--reference-prompt", "a castle", "--prompt", "a boat")
    assert one.style == GeneratedReference("a castle", 0) and one.sampling.guidance == 5.0


def test_reference_mistakes_are_user_errors(tmp_path):
    with pytest.raises(UsageError, match="no style source"):
        _request("--prompt", "a boat")
    with pytest.raises(UsageError, match="no such picture"):
        _request("--reference-image", str(tmp_path / "gone.png:2"), "--prompt", "a boat")
    with pytest.raises(UsageError, match="weight above 0"):
        _request("--reference-prompt", "a:0", "--reference-prompt", "b:0", "--prompt", "a boat")
    (tmp_path / "a.png").write_bytes(b"")
    with pytest.raises(UsageError, match="reference-caption"):
        _request("--reference-image", str(tmp_path / "a.png"), "--reference-caption", "x",
                 "--reference-caption", "y", "--prompt", "a boat")


def test_panel_sizes_from_the_command_line_and_the_prompts_file(tmp_path):
    board = tmp_path / "board.txt"
    board.write_text("the harbour | size=1344x768\na face | size=832x1216\na cup\n", encoding="utf-8")
    request = _request("--reference-prompt", "a port", "--prompts-file", str(board))
    assert [p.size for p in request.panels] == [(1344, 768), (832, 1216), None]
    request = _request("--reference-prompt", "a port", "--prompts-file", str(board),
                       "--panel-sizes", "set,640x1536,1024x1024")
    assert [p.size for p in request.panels] == [None, (640, 1536), (1024, 1024)]
    with pytest.raises(UsageError, match="panel-sizes has 2 sizes for 3 panels"):
        _request("--reference-prompt", "a port", "--prompts-file", str(board), "--panel-sizes", "set,set")
    with pytest.raises(SystemExit):
        _request("--reference-prompt", "a port", "--prompt", "x", "--panel-sizes", "1000x768")


@pytest.mark.parametrize("text, picture", [
    ("a train:nan", False), ("a train:-1", False), ("a train :inf", False), ("a train:1e3", False),
    ("moods/a.png:-0.5", True), ("moods/a.png:NaN", True),
])
def test_a_suffix_that_reads_as_a_number_but_is_no_weight_is_refused(text, picture):
    """Issue 23, item 13: ``a train:nan`` was silently the prompt text ``a train:nan``."""
    with pytest.raises(UsageError, match=r"TEXT\[:WEIGHT\], WEIGHT >= 0"):
        split_weight(text, picture)
    flag = "--reference-image" if picture else "--reference-prompt"
    with pytest.raises(UsageError, match=r"TEXT\[:WEIGHT\]"):
        _request(flag, text, "--prompt", "a boat")
    assert split_weight("a train: at nightfall", False) == ("a train: at nightfall", 1.0)  # a colon in a prompt


def test_panoramas_from_the_command_line():
    request = _request("--reference-prompt", "a port", "--prompt", "the bay", "--prompt", "a boat",
                       "--panel-sizes", "4096x1024,set", "--window-stride", "16", "--panorama-above", "3")
    assert [p.size for p in request.panels] == [(4096, 1024), None]
    assert (request.sampling.window_stride, request.sampling.panorama_above) == (16, 3.0)
    defaults = _request("--reference-prompt", "a port", "--prompt", "the bay").sampling
    assert (defaults.window_stride, defaults.panorama_above) == (8, 2.0)
    with pytest.raises(UsageError, match="panorama above must be a number from 1"):
        _request("--reference-prompt", "a port", "--prompt", "x", "--panorama-above", "0.5")
    with pytest.raises(SystemExit):
        _request("--reference-prompt", "a port", "--prompt", "x", "--window-stride", "0")


@pytest.mark.parametrize("sizes, said", [
    ("0x128", "width must be a whole number from 64 to 4096, got 0"),
    ("-128x128", "a size is WIDTHxHEIGHT, e.g. 1344x768, got '-128x128'"),
    ("100000x64", "width must be a whole number from 64 to 4096, got 100000"),
    ("512x100", "height must be a multiple of 64, got 100"),
    ("512x128,set,x", "got 'x'"),
])
def test_a_hostile_panel_size_is_one_line_and_exit_2_before_the_model_loads(tmp_path, capsys, monkeypatch, sizes, said):
    err = refused_generate(["--model", "tiny-sd15", "--reference-prompt", "a hill", "--prompt", "a fox",
                            "--prompt", "a bay", f"--panel-sizes={sizes}"], tmp_path, monkeypatch, capsys)
    assert said in err, err
