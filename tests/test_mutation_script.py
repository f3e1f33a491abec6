"""``scripts/mutation.py --screen`` (docs/testing.md, "Mutation testing") on a tiny pure-Python
target of the test's own: mutmut generates, the screen kills, mutmut judges the rest by name.
mutmut 3 comes with the dev extra."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "mutation.py"

CLAMP = '''def clamp(value, low, high):
    if value < low:
        return low
    if value > high:
        return high
    return value


def scaled(value, factor=2):
    return clamp(value * factor + 1, 0, 100)
'''

# test_clamp_once passes only on its first run in a process, so the screen's runs of it after
# the first fail whatever the mutant: the control after them fails too and none of those runs
# may count as a kill. test_clamp kills every mutant but the two equivalent ones of clamp (value equal
# to a bound is returned either way).
CLAMP_TESTS = '''from tinyclamp.clamp import clamp, scaled

RESULTS = []


def test_clamp_once():
    RESULTS.append(clamp(5, 0, 10))
    assert RESULTS == [5]


def test_clamp():
    assert clamp(-1, 0, 10) == 0
    assert clamp(11, 0, 10) == 10
    assert clamp(5, 0, 10) == 5
    assert [scaled(3), scaled(-5), scaled(60), scaled(3, factor=3)] == [7, 0, 100, 10]
'''


@pytest.fixture
def mutation(tmp_path, monkeypatch):
    """scripts/mutation.py with the tiny package ``tinyclamp`` in ``tmp_path`` as its project."""
    spec = importlib.util.spec_from_file_location("mutation_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # its dataclasses look their module up
    spec.loader.exec_module(module)
    (tmp_path / "tinyclamp").mkdir()
    (tmp_path / "tinyclamp" / "__init__.py").write_text("", encoding="utf-8")
    (tmp_path / "tinyclamp" / "clamp.py").write_text(CLAMP, encoding="utf-8")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_clamp.py").write_text(CLAMP_TESTS, encoding="utf-8")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "tinyclamp"\nversion = "0"\n', encoding="utf-8")
    monkeypatch.setattr(module, "ROOT", tmp_path)
    monkeypatch.setattr(module, "WORK", tmp_path / "build" / "mutation")
    monkeypatch.setattr(module, "PACKAGE", "tinyclamp")
    return module


def test_screen_kills_what_a_test_fails_on_and_mutmut_judges_the_rest_by_name(mutation, tmp_path, capsys):
    target = mutation.Target("tinyclamp/clamp.py", ("tests/test_clamp.py",), timeout_constant=1.0)
    statuses = mutation.run_target("clamp", target, children=1, screened=True)

    folder = tmp_path / "build" / "mutation" / "clamp"
    meta = json.loads((folder / "mutants" / "tinyclamp" / "clamp.py.meta").read_text(encoding="utf-8"))
    assert set(statuses) == set(meta["exit_code_by_key"]) and len(statuses) > 2
    survivors = sorted(name for name, status in statuses.items() if status == "survived")
    assert len(survivors) == 2
    assert set(statuses.values()) == {"killed", "survived"}
    # the screen killed all but the two, with test_clamp, and only those two ran by name
    kills = json.loads((folder / mutation.SCREEN_KILLS).read_text(encoding="utf-8"))
    assert set(kills) == set(statuses) - set(survivors)
    assert {test.split(":")[0] for test in kills.values()} == {"tests/test_clamp.py"}
    assert all("test_clamp_once" not in test for test in kills.values())
    checked_by_mutmut = {name for name, code in meta["exit_code_by_key"].items() if code is not None}
    assert checked_by_mutmut == set(survivors)
    # each survivor with its diff: the two bounds' comparisons made inclusive
    shown = (folder / "survivors.txt").read_text(encoding="utf-8")
    assert [line[3:].split(" ")[0] for line in shown.splitlines() if line.startswith("## ")] == survivors
    assert "+    if value <= low:" in shown and "+    if value >= high:" in shown
    assert mutation.summary("clamp", statuses).split()[1:3] == [str(len(statuses)), "mutants"]
    assert f"the screen killed {len(kills)} of {len(statuses)}; mutmut runs 2 by name" in capsys.readouterr().out


def test_screen_stops_when_mutmut_cannot_collect_its_stats(mutation, tmp_path):
    """A test that fails unmutated: mutmut stops at its stats, and so does the screened run,
    rather than screen mutants against a broken suite."""
    (tmp_path / "tests" / "test_clamp.py").write_text(
        "from tinyclamp.clamp import clamp\n\n\ndef test_clamp():\n    assert clamp(5, 0, 10) == 6\n",
        encoding="utf-8")
    target = mutation.Target("tinyclamp/clamp.py", ("tests/test_clamp.py",), timeout_constant=1.0)
    with pytest.raises(RuntimeError, match="mutmut did not generate the mutants and stats"):
        mutation.run_target("clamp", target, children=1, screened=True)
    assert not (tmp_path / "build" / "mutation" / "clamp" / "screened.txt").exists()
