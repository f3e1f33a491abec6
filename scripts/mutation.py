"""Mutation testing of the modules whose bugs change pictures silently (issue 24; docs/testing.md).

Runs mutmut once per target, each in its own folder under ``build/mutation/<target>`` with its own
mutmut configuration: the target's module is the only one mutated and its own fast tests are the
only ones run, so a target fits on two cores. mutmut (3.x) forks every mutant from a process that
has imported torch and collected the tests once, and runs only the tests that executed the
mutated function; results are kept in the folder, so a second run redoes only what changed.

    python scripts/mutation.py                 # every target, cheapest first
    python scripts/mutation.py request norms   # some of them
    python scripts/mutation.py --screen trajectory   # screened first (below): torch targets
    python scripts/mutation.py --list          # the targets and their tests

``--screen``: mutmut generates the mutants and collects which tests reach which function, and
stops before running any; ``scripts/mutation_screen.py`` then runs every mutant mutmut has not
killed in one pytest session (fixtures made once) against the tests that reach it, and mutmut
runs what the screen left by name, its verdict the one that counts. Killed is the screen's
kills and mutmut's. On loaded cores a torch target's mutant costs mutmut 20-40 s, mostly
building the tiny model again; the screen, a test run.

Each target writes ``build/mutation/<target>/log.txt`` and ``survivors.txt`` (every surviving
mutant with its diff); the last lines printed are the score table that docs/testing.md records.
CI does not run this (``make mutation`` does).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "build" / "mutation"
PACKAGE = "stylealigned_desktop"
SCRIPTS = Path(__file__).resolve().parent
# A selection that names no mutant: mutmut generates the mutants and collects its stats, then
# stops on its check that a selection matches some mutant, before its clean run and any mutant.
NO_MUTANT = "no-mutant-is-named-this"
NOTHING_MATCHES = "Filtered for specific mutants, but nothing matches"
SCREEN_KILLS = "screen-killed.json"
"""In a target's folder: each mutant the last screen killed -> the test that killed it."""
# Tests that cannot run twice on the same fixtures (they count an engine's calls from 0): the
# screen leaves them out, mutmut's runs by name keep them.
UNSCREENABLE = ("tests/test_generator_picture.py::test_second_set_with_the_same_reference_starts_denoising_at_once",)


@dataclass(frozen=True)
class Target:
    module: str
    """The file mutated, relative to the repository root."""
    tests: tuple[str, ...]
    """pytest arguments selecting the module's own tests (files, ``file::test`` or ``-k``)."""
    functions: tuple[str, ...] = field(default=())
    """Only these functions are mutated (mutmut's keys: ``x_name`` for a function,
    ``xǁClassǁmethod`` for a method; globs allowed); empty: the whole module."""
    timeout_constant: float = 10.0
    """mutmut's CPU-time limit per mutant is (tests' time + this) x 30 seconds: 10 leaves room for
    a first torch call; pure-Python targets take less, so a mutant that loops stops sooner."""
    env: tuple[tuple[str, str], ...] = field(default=())
    """Environment for the target's tests; ``{kept}`` is a folder for what its tests keep
    between mutants within one run (emptied when a run starts)."""


# Cheapest first: the order a full run takes.
TARGETS: dict[str, Target] = {
    "request": Target("stylealigned_desktop/engine/request.py",
                      ("tests/test_request.py", "tests/test_request_validation.py",
                       "tests/test_lora.py::test_lora_arguments_parse_file_and_weight",
                       "tests/test_lora.py::test_a_lora_file_whose_name_ends_in_colon_number_is_taken_whole")),
    "planning": Target("stylealigned_desktop/session/planning.py",
                       ("tests/session/test_planning.py", "tests/session/test_session_model.py",
                        "tests/session/test_session_model_extras.py")),
    # the engine's runs of test_sharding are made once and kept (the engine is not mutated here)
    "sharding": Target("stylealigned_desktop/server/sharding.py", ("tests/server/test_sharding.py",),
                       timeout_constant=1.0, env=(("STYLEALIGNED_TEST_ENGINE_EVENTS", "{kept}"),)),
    "norms": Target("stylealigned_desktop/engine/norms.py",
                    ("tests/test_norms.py", "tests/test_references_and_sizes.py")),
    "attention": Target("stylealigned_desktop/engine/attention.py",
                        ("tests/test_attention.py", "tests/test_references_and_sizes.py",
                         "tests/test_norms.py")),
    # the run's seeds (panels, the generated reference, characters' anchors), its record and the
    # untitled folders it outlives, and a past run's seeds restored locked (its panels' and its
    # generated reference's): the session tests that plan, record, save and restore runs
    "model-seeds": Target("stylealigned_desktop/session/model.py",
                          ("tests/session/test_session_model.py", "tests/session/test_session_model_extras.py",
                           "tests/session/test_characters.py", "tests/session/test_session_store.py",
                           "tests/session/test_session_containment.py",
                           "tests/session/test_session_careless_files.py",
                           "tests/session/test_run_characters.py", "tests/session/test_panel_size_mode.py",
                           "tests/session/test_panel_notes.py"),
                          ("xǁSessionǁ_plan", "xǁSessionǁprepare_generate", "xǁSessionǁprepare_reroll",
                           "xǁSessionǁ_prepare", "xǁSessionǁ_take_run_seeds", "xǁSessionǁrecord_run",
                           "xǁSessionǁ_plan_done", "xǁSessionǁ_restore_style", "xǁSessionǁrestore_run")),
    # the characters' anchor seeds outside a run (session/character_edits.py: drawn when a
    # character is added or the anchor count grows, typed, re-rolled, a past run's put back
    # locked), the rest of the session's seed-taking parts beside model-seeds
    "character-seeds": Target("stylealigned_desktop/session/character_edits.py",
                              ("tests/session/test_characters.py", "tests/session/test_run_characters.py",
                               "tests/session/test_characters_hostile.py"),
                              ("xǁCharacterEditsǁadd_character", "xǁCharacterEditsǁset_anchor_seed",
                               "xǁCharacterEditsǁreroll_character", "xǁCharacterEditsǁupdate_character_settings",
                               "xǁCharacterEditsǁ_restore_characters", "xǁCharacterEditsǁ_put_character")),
    # its inputs (tests/test_inversion_inputs.py) and a base without pooled text or time ids (SD 2 v)
    "inversion": Target("stylealigned_desktop/engine/inversion.py",
                        ("tests/test_inversion.py", "tests/test_inversion_inputs.py",
                         "tests/test_bases_features.py::test_v_prediction_inversion_round_trip_reproduces_z0",
                         "tests/test_generator_picture.py", "tests/test_generator_references.py")),
    "trajectory": Target("stylealigned_desktop/engine/trajectory.py",
                         ("tests/test_trajectory_files.py", "tests/test_inversion.py",
                          "tests/test_generator_picture.py")),
    # characters (spec section 13): the subject maps, Otsu masks and resize, and the panels'
    # attention to their anchors; engine-free tests on non-square grids (the engine's runs of
    # test_characters.py build whole sets: minutes a mutant)
    "subject-masks": Target("stylealigned_desktop/engine/subject_masks.py", ("tests/test_subject_masks.py",)),
    "character-attention": Target("stylealigned_desktop/engine/character_attention.py",
                                  ("tests/test_characters.py::test_the_bias_form_equals_the_gather_form",
                                   "tests/test_characters.py::test_sharing_starts_at_step_1_in_character_layers_once_an_anchor_has_a_mask",
                                   "tests/test_characters.py::test_the_anchors_call_records_them_and_each_sees_its_characters_other_anchors",
                                   "tests/test_characters.py::test_a_call_where_no_row_sees_an_anchor_token_is_the_plain_attention_whole",
                                   "tests/test_characters.py::test_anchor_masks_are_resized_to_each_layers_grid_within_a_step",
                                   "tests/test_characters.py::test_character_layers_are_the_up_blocks_or_all_shared_layers_by_their_self_attention_index",
                                   "tests/test_characters.py::test_the_panels_attention_and_its_masks_stay_on_the_queries_device",
                                   "tests/test_characters.py::test_installing_characters_maps_anchors_and_naming_panels_and_wraps_the_deepest_cross_attention",
                                   "tests/test_characters.py::test_anchors_are_mapped_whole_in_a_windowed_set_and_one_tokenizer_pipes_read_the_same_tokens",
                                   "tests/test_subject_masks.py::test_the_deepest_layers_map_the_conditional_rows_of_a_call_into_non_square_masks",
                                   "tests/test_subject_masks.py::test_subject_maps_need_a_conditional_half_and_a_transformers_cross_attention",
                                   "tests/test_characters.py::test_anchors_see_the_other_anchors_of_their_character_without_dropout",
                                   "tests/test_characters.py::test_dropout_keeps_about_one_minus_p_and_depends_on_its_four_numbers_only",
                                   "tests/test_attention.py::test_panels_riding_along_share_their_characters_anchors_in_a_character_layer")),
    # the key-building and record parts of the generator, split into stages since this map was
    # first written: the references' rows and trajectory keys, the rows' plan, the records
    "references": Target("stylealigned_desktop/engine/references.py",
                         ("tests/test_generator_references.py", "tests/test_inversion_cache_keys.py",
                          "tests/test_reference_trajectories.py", "tests/test_generator_picture.py")),
    # rows.py is torch-free: its own plan tests kill in milliseconds what the engine runs guard too
    "rows": Target("stylealigned_desktop/engine/rows.py",
                   ("tests/test_rows.py", "tests/test_generator_references.py", "tests/test_generator_picture.py")),
    "generator": Target("stylealigned_desktop/engine/generator.py",
                        ("tests/test_generator_references.py", "tests/test_inversion_cache_keys.py",
                         "tests/test_reference_trajectories.py", "tests/test_generator_picture.py"),
                        ("xǁEngineǁreference_trajectory", "xǁEngineǁ_record", "x__picture_metadata")),
    # the identity's whole string first (torch-free), then what reads it; a hub model's from test_hub
    "model-identity": Target("stylealigned_desktop/engine/models.py",
                             ("tests/test_model_identity.py", "tests/test_models.py", "tests/test_vae.py",
                              "tests/test_inversion_cache_keys.py",
                              "tests/test_hub.py::test_model_identity_names_the_cached_revision_and_changes_with_it",
                              "tests/test_hub.py::test_a_model_not_in_the_cache_has_no_snapshot"),
                             ("x_model_identity", "x_vae_identity", "x__base_identity")),
}


def _config(target: Target) -> str:
    tests = "\n    ".join(target.tests)
    return (
        "[mutmut]\n"
        f"source_paths = {PACKAGE}\n"
        f"only_mutate = {target.module}\n"
        f"pytest_add_cli_args_test_selection =\n    {tests}\n"
        "pytest_add_cli_args =\n    -p\n    no:cacheprovider\n    -q\n"
        # torch is not fork-safe once it has run: fork the mutants from a server that only collected
        "process_isolation = forkserver\n"
        f"timeout_constant = {target.timeout_constant}\n"
        "use_git_change_detection = false\n"
    )


def _prepare(name: str, target: Target) -> Path:
    """The target's folder: links to the package, the tests and pyproject.toml, its setup.cfg."""
    folder = WORK / name
    folder.mkdir(parents=True, exist_ok=True)
    for entry in (PACKAGE, "tests", "pyproject.toml"):
        link = folder / entry
        if not link.is_symlink():
            link.symlink_to(ROOT / entry)
    (folder / "setup.cfg").write_text(_config(target), encoding="utf-8")
    return folder


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    # one thread per mutant: two mutants at a time on two cores, not two times all of them
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               QT_QPA_PLATFORM="offscreen", TOKENIZERS_PARALLELISM="false")
    return env


def _patterns(target: Target) -> list[str]:
    dotted = target.module.removesuffix(".py").replace("/", ".")
    return [f"{dotted}.{function}__mutmut_*" for function in target.functions]


def _statuses(folder: Path, target: Target) -> dict[str, str]:
    """Every mutant of the target -> its status (mutmut's names: killed, survived, no tests, ...);
    a mutant the last screen killed is killed, whatever mutmut said of it before."""
    from mutmut.stats import status_by_exit_code

    meta = folder / "mutants" / (target.module + ".meta")
    codes = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
    screened = folder / SCREEN_KILLS
    screen_kills = json.loads(screened.read_text(encoding="utf-8")) if screened.exists() else {}
    patterns = _patterns(target)
    return {name: "killed" if name in screen_kills else status_by_exit_code[code] for name, code in codes.items()
            if not patterns or any(fnmatch(name, p) for p in patterns)}


def _unchecked(folder: Path, target: Target) -> list[str]:
    """The target's mutants without a result yet (none before a first run)."""
    meta = folder / "mutants" / (target.module + ".meta")
    if not meta.exists():
        return []
    return sorted(mutant for mutant, status in _statuses(folder, target).items() if status == "not checked")


def _mutmut_run(folder: Path, env: dict[str, str], children: int, selection: list[str], log) -> None:
    """``mutmut run`` of these mutants (or globs), its output appended to the log as it comes."""
    command = [sys.executable, "-m", "mutmut", "run", "--max-children", str(children), *selection]
    log.flush()
    subprocess.run(command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT, check=False)


def screen(folder: Path, target: Target, env: dict[str, str], mutants: list[str], log) -> dict[str, str]:
    """Each of these mutants that a test of the target fails on (scripts/mutation_screen.py) ->
    that test; also kept in the folder's SCREEN_KILLS."""
    kills = folder / SCREEN_KILLS
    kills.unlink(missing_ok=True)
    names = folder / "screened.txt"
    names.write_text("".join(f"{mutant}\n" for mutant in mutants), encoding="utf-8")
    paths = [str(SCRIPTS), *filter(None, [env.get("PYTHONPATH")])]
    screen_env = {**env, "SCREEN_MUTANTS": str(names), "SCREEN_OUT": str(kills),
                  "PYTHONPATH": os.pathsep.join(paths)}
    deselected = [argument for test in UNSCREENABLE for argument in ("--deselect", test)]
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-p", "mutation_screen",
               "--rootdir", ".", *deselected, *target.tests]
    log.flush()
    done = subprocess.run(command, cwd=folder / "mutants", env=screen_env, stdout=log, stderr=subprocess.STDOUT,
                          check=False)
    if done.returncode != 0:
        print(f"  the screen's pytest exited with {done.returncode} (log.txt): a test that failed unmutated "
              "or after its mutants (its control) killed none", flush=True)
    if not kills.exists():
        kills.write_text("{}", encoding="utf-8")
    return json.loads(kills.read_text(encoding="utf-8"))


def run_screened(folder: Path, target: Target, env: dict[str, str], children: int, log) -> None:
    """mutmut generates the mutants and its stats without running any, the screen runs what
    mutmut has not killed, and mutmut runs what the screen left by name."""
    _mutmut_run(folder, env, children, [NO_MUTANT], log)
    if NOTHING_MATCHES not in (folder / "log.txt").read_text(encoding="utf-8", errors="replace"):
        raise RuntimeError(f"mutmut did not generate the mutants and stats: see {folder / 'log.txt'}")
    log.write("\n--- mutmut stopped there on purpose (the selection names no mutant); the screen:\n")
    (folder / SCREEN_KILLS).unlink(missing_ok=True)  # what mutmut says now, without the last screen
    statuses = _statuses(folder, target)
    screened = sorted(m for m, status in statuses.items() if status in ("not checked", "survived", "no tests"))
    kills = screen(folder, target, env, screened, log)
    left = [mutant for mutant in screened if mutant not in kills]
    print(f"  the screen killed {len(kills)} of {len(screened)}; mutmut runs {len(left)} by name", flush=True)
    if left:
        _mutmut_run(folder, env, children, left, log)


def run_target(name: str, target: Target, children: int, resume: bool = False,
               screened: bool = False) -> dict[str, str]:
    folder = _prepare(name, target)
    env = _environment()
    kept = folder / "kept"
    shutil.rmtree(kept, ignore_errors=True)  # what the unmutated code made may have changed since
    env.update((key, value.format(kept=kept)) for key, value in target.env)
    with open(folder / "log.txt", "w", encoding="utf-8") as log:
        if screened:
            run_screened(folder, target, env, children, log)
        else:
            _run_plain(folder, target, env, children, resume, log)
    statuses = _statuses(folder, target)
    with open(folder / "survivors.txt", "w", encoding="utf-8") as out:
        for mutant, status in sorted(statuses.items()):
            if status in ("survived", "no tests"):
                shown = subprocess.run([sys.executable, "-m", "mutmut", "show", mutant], cwd=folder, env=env,
                                       capture_output=True, text=True, check=False)
                out.write(f"## {mutant} ({status})\n{shown.stdout}\n")
    return statuses


def _run_plain(folder: Path, target: Target, env: dict[str, str], children: int, resume: bool, log) -> None:
    """mutmut alone: every mutant without a result (a target of some functions: all of them,
    or with ``resume`` those still unchecked); the last screen's kills no longer count."""
    (folder / SCREEN_KILLS).unlink(missing_ok=True)
    # mutmut reruns every mutant it is given by name: a target of some functions resumes only
    # when given those still unchecked
    resumed = (folder / "mutants" / (target.module + ".meta")).exists() and resume and target.functions
    selection = _unchecked(folder, target) if resumed else _patterns(target)
    if selection or not resumed:
        _mutmut_run(folder, env, children, selection, log)


def summary(name: str, statuses: dict[str, str]) -> str:
    """One line of the score table; the score is killed (timeouts included, as mutmut counts
    them) over the mutants checked so far."""
    killed = sum(s in ("killed", "caught by type check") for s in statuses.values())
    timeouts = sum(s == "timeout" for s in statuses.values())
    survived = sum(s == "survived" for s in statuses.values())
    untested = sum(s == "no tests" for s in statuses.values())
    unchecked = sum(s == "not checked" for s in statuses.values())
    other = len(statuses) - killed - timeouts - survived - untested - unchecked
    checked = len(statuses) - unchecked
    score = 100.0 * (killed + timeouts) / max(1, checked)
    return (f"{name:12s} {len(statuses):5d} mutants  {unchecked:4d} not checked  {killed:5d} killed  "
            f"{timeouts:4d} timeout  {survived:4d} survived  {untested:3d} no tests  {other:3d} other  "
            f"{score:5.1f} %")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", help=f"some of: {', '.join(TARGETS)} (default: all)")
    parser.add_argument("--children", type=int, default=2, help="mutants run at once (default 2)")
    parser.add_argument("--list", action="store_true", help="list the targets and their tests")
    parser.add_argument("--report", action="store_true", help="only print the table of the last runs")
    parser.add_argument("--screen", action="store_true",
                        help="mutmut generates, scripts/mutation_screen.py screens every mutant in one pytest "
                             "session, mutmut runs what it left by name (torch targets: minutes, not hours)")
    parser.add_argument("--resume", action="store_true",
                        help="a target of some functions: run only its mutants not checked yet (mutmut reruns "
                             "every mutant named; a whole module resumes without this)")
    args = parser.parse_args(argv)
    unknown = [t for t in args.targets if t not in TARGETS]
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; known: {', '.join(TARGETS)}")
    names = args.targets or list(TARGETS)
    if args.list:
        for name in names:
            target = TARGETS[name]
            print(f"{name}: {target.module} {' '.join(target.functions)}\n    tests: {' '.join(target.tests)}")
        return 0
    lines = []
    for name in names:
        if args.report:
            if (WORK / name / "mutants").is_dir():
                print(summary(name, _statuses(WORK / name, TARGETS[name])))
            continue
        statuses = run_target(name, TARGETS[name], args.children, args.resume, args.screen)
        lines.append(summary(name, statuses))
        print(lines[-1], flush=True)
    if lines:
        print("\n".join(["", "score (killed / mutants checked) per target:", *lines]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
