"""Run one of the frozen build's entry scripts from source, after the build's runtime hook
(rthook_modules.py): the same program the frozen folder runs, unfrozen. packaging/smoke.sh uses
it to record which modules the unfrozen app imports in each step.

    python packaging/unfrozen.py stylealigned_cli.py generate --model tiny ...
    python packaging/unfrozen.py stylealigned_desktop_window.py --quit-after-show
"""

import runpy
import sys
from pathlib import Path

here = Path(__file__).resolve().parent
runpy.run_path(str(here / "rthook_modules.py"), run_name="rthook_modules")
script = here / "entry" / sys.argv[1]
sys.argv = [script.stem, *sys.argv[2:]]
runpy.run_path(str(script), run_name="__main__")
