"""A pytest plugin that screens many of a mutation target's mutants in one pytest run (docs/testing.md).

mutmut forks one pytest session per mutant: on loaded shared cores most of a mutant's time goes
to building the tiny model and the module fixtures again. This plugin uses the mutants mutmut
wrote (its ``mutants/`` folder, whose functions pick the mutant named by ``MUTANT_UNDER_TEST``):
each test's fixtures are made once, the test runs once unmutated (its real outcome, and a
control that the fixtures are sound), then once per listed mutant that the test reaches (mutmut's
stats; ``SCREEN_ALL=1``: every listed one) until a test kills it, and once more unmutated after
them: the test's kills count only when this control passes. A test that takes ``tmp_path`` gets
a new empty folder inside it for each run, and ``caplog`` is cleared, so what one run left there
never counts in the next; one whose other function-scoped fixtures use ``tmp_path`` (or that
takes ``tmp_path_factory``) runs unmutated only. Fixtures of a wider scope (pictures written once
per module) are shared by every run, as by the tests of an ordinary run. A test that cannot run
twice on the same fixtures fails its control even unmutated (one that counts an engine's calls
from 0) and kills nothing: leave it out (``--deselect``; ``UNSCREENABLE`` in mutation.py).
A mutant it does not kill is not judged: run it by name with mutmut, or judge it by reason.

``scripts/mutation.py --screen TARGET`` does all of it (mutmut's generation, this screen, mutmut's
runs by name); by hand:

    cd build/mutation/<target>/mutants
    SCREEN_MUTANTS=names.txt SCREEN_OUT=killed.json PYTHONPATH=<mutmut> \\
        python -m pytest -p no:cacheprovider -p mutation_screen --rootdir . <tests...>

(with ``scripts/`` on ``PYTHONPATH`` too). ``killed.json``: each killed mutant and its test.
"""

from __future__ import annotations

import json
import os
import signal

with open(os.environ["SCREEN_MUTANTS"], encoding="utf-8") as names:
    MUTANTS = [line.strip() for line in names if line.strip()]
with open("mutmut-stats.json", encoding="utf-8") as stats:
    STATS = json.load(stats)["tests_by_mangled_function_name"]
killed: dict[str, str] = {}


def _reaches(nodeid: str, mutant: str) -> bool:
    return bool(os.environ.get("SCREEN_ALL")) or nodeid in STATS.get(mutant.split("__mutmut_")[0], ())


def _timeout(*_):
    raise TimeoutError("a mutant ran over a minute")


def _uses_temporary_folders(fixtureinfo, names) -> bool:
    """Whether any of these fixtures is, or is made from, ``tmp_path`` / ``tmp_path_factory`` for
    one test (a fixture of a wider scope is made once for many tests anyway)."""
    seen, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name in ("tmp_path", "tmp_path_factory"):
            return True
        if name in seen or name == "request":
            continue
        seen.add(name)
        for definition in fixtureinfo.name2fixturedefs.get(name, ()):
            if definition.scope == "function":
                todo.extend(definition.argnames)
    return False


def pytest_pyfunc_call(pyfuncitem):
    test = pyfuncitem.obj
    info = pyfuncitem._fixtureinfo
    arguments = {name: pyfuncitem.funcargs[name] for name in info.argnames}
    os.environ["MUTANT_UNDER_TEST"] = "none"
    test(**arguments)
    folder = arguments.get("tmp_path")
    reached = [m for m in MUTANTS if m not in killed and _reaches(pyfuncitem.nodeid, m)]
    if not reached or _uses_temporary_folders(info, [name for name in info.argnames if name != "tmp_path"]):
        return True
    runs = 0

    def fresh() -> dict:
        # a new empty tmp_path and no log records of the runs before, for each run of the test
        nonlocal runs
        runs += 1
        if "caplog" in arguments:
            arguments["caplog"].clear()
        if folder is None:
            return arguments
        (folder / f"screen-{runs}").mkdir()
        return {**arguments, "tmp_path": folder / f"screen-{runs}"}

    kills = {}
    signal.signal(signal.SIGALRM, _timeout)
    for mutant in reached:
        os.environ["MUTANT_UNDER_TEST"] = mutant
        signal.alarm(60)
        try:
            test(**fresh())
        except BaseException as error:  # noqa: BLE001 - any failure of the test kills the mutant
            kills[mutant] = f"{pyfuncitem.nodeid}: {type(error).__name__}"
        finally:
            signal.alarm(0)
            os.environ["MUTANT_UNDER_TEST"] = "none"
    # the control: the fixtures are still sound after the mutants; if not, this test's kills may
    # be the fixtures' doing and do not count (the test fails)
    test(**fresh())
    killed.update(kills)
    with open(os.environ["SCREEN_OUT"], "w", encoding="utf-8") as out:
        json.dump(killed, out, indent=1)
    return True
