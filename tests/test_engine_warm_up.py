"""Engine.warm_up: the heavy imports and torch's first kernels happen there, in any thread."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

# Modules a first generation needs besides the model; importing the engine does not load them.
FIRST_RUN_MODULES = [
    "diffusers.pipelines.stable_diffusion_xl.pipeline_stable_diffusion_xl",
    "diffusers.schedulers.scheduling_ddim",
    "diffusers.schedulers.scheduling_euler_discrete",
    "diffusers.schedulers.scheduling_dpmsolver_multistep",
    "transformers.models.clip.modeling_clip",
    "transformers.models.clip.tokenization_clip",
]


def test_warm_up_in_a_thread_imports_what_the_first_run_needs_and_loads_no_model():
    # A fresh interpreter: in this one the test suite has imported everything already.
    script = textwrap.dedent(f"""
        import json, sys, threading
        from stylealigned_desktop.engine.generator import Engine
        names = {FIRST_RUN_MODULES!r}
        before = [n for n in names if n in sys.modules]
        engine = Engine()
        errors = []
        def run():
            try:
                engine.warm_up()
            except BaseException as exc:
                errors.append(repr(exc))
        thread = threading.Thread(target=run)
        thread.start()
        thread.join()
        after = [n for n in names if n in sys.modules]
        loaded = set(sys.modules)
        engine.warm_up()
        again = sorted(set(sys.modules) - loaded)
        print(json.dumps(dict(before=before, after=after, errors=errors, again=again,
                              pipe=engine._pipe is not None)))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["errors"] == []
    assert result["before"] == []
    assert result["after"] == FIRST_RUN_MODULES
    assert result["pipe"] is False  # no model is loaded by a warm-up
    assert result["again"] == []  # a second call finds everything loaded (no timing: CI is loaded)
