import pytest

from stylealigned_desktop.prompts_file import (
    PanelLine,
    PromptsFileError,
    format_line,
    parse_line,
    parse_size,
    parse_text,
    read_prompts_file,
)


def test_blank_and_comment_lines_are_ignored():
    text = "# storyboard\n\na toy train\n   \n  # another comment\na toy boat | seed=42\n"
    panels = parse_text(text)
    assert [p.prompt for p in panels] == ["a toy train", "a toy boat"]
    assert panels[0].seed is None and panels[1].seed == 42


def test_control_fields(tmp_path):
    line = "a train at dawn | control=depth:train.png | scale=0.7 | start=0.1 | end=0.9"
    panel = parse_line(line, base=tmp_path)
    assert panel.control_mode == "depth" and panel.control_image == str(tmp_path / "train.png")
    assert (panel.scale, panel.start, panel.end) == (0.7, 0.1, 0.9)
    canny = parse_line("a lighthouse | control=canny:/abs/sketch.png | low=80 | high=160")
    assert canny.control_image == "/abs/sketch.png" and (canny.low, canny.high) == (80, 160)
    ready = parse_line("a map | control=map:edges.png | kind=canny")
    assert ready.control_mode == "map" and ready.kind == "canny"


def test_escaped_bar_stays_in_the_prompt():
    assert parse_line(r"a sign reading A \| B | seed=3").prompt == "a sign reading A | B"


@pytest.mark.parametrize(
    "line, fragment",
    [
        ("a cat | seed=x", "whole number"),
        ("a cat | control=blur:x.png", "MODE:PATH"),
        ("a cat | control=depth", "MODE:PATH"),
        ("a cat | scale=0.5", "without control"),
        ("a cat | colour=red", "unknown field"),
        ("a cat | seed", "key=value"),
        ("a cat | seed=1 | seed=2", "twice"),
        ("| seed=1", "prompt is empty"),
        ("a cat | control=map:m.png | kind=normal", "depth or canny"),
        ("a cat | size=1000x768", "multiple of 64"),
        ("a cat | size=wide", "WIDTHxHEIGHT"),
        ("a cat | size=1344x768 | size=768x1344", "twice"),
    ],
)
def test_malformed_lines_give_clear_errors_with_the_line_number(line, fragment):
    with pytest.raises(PromptsFileError, match=fragment) as error:
        parse_text(f"# header\n{line}\n", source="board.txt")
    assert "board.txt:2" in str(error.value)


def test_panel_sizes():
    wide, tall, square = parse_text("harbour, wide | size=1344x768\nface | seed=3 | size=832 × 1216\ncup\n")
    assert (wide.size, tall.size, square.size) == ((1344, 768), (832, 1216), None)
    assert parse_size("1536X640") == (1536, 640)


def test_round_trip_through_format_line():
    panel = PanelLine("a | b", seed=7, control_mode="canny", control_image="c.png", scale=0.5, low=10, high=20,
                      size=(640, 1536))
    assert parse_line(format_line(panel)) == panel
    hashtag = PanelLine("#1 hit single, poster", control_mode="map", control_image="/x/a|b.png", kind="canny")
    assert parse_line(format_line(hashtag)) == hashtag


def test_byte_order_mark_is_not_part_of_the_first_prompt(tmp_path):
    path = tmp_path / "board.txt"
    path.write_bytes("\ufefffirst\nsecond\n".encode())
    assert read_prompts_file(path)[0].prompt == "first"


def test_reading_files(tmp_path):
    path = tmp_path / "board.txt"
    path.write_text("one\ntwo | seed=2\n", encoding="utf-8")
    assert [p.prompt for p in read_prompts_file(path)] == ["one", "two"]
    with pytest.raises(PromptsFileError, match="no such file"):
        read_prompts_file(tmp_path / "missing.txt")
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(PromptsFileError, match="UTF-8"):
        read_prompts_file(binary)
