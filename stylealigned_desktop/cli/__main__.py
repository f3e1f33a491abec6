"""``python -m stylealigned_desktop.cli``: the same as the ``stylealigned`` command."""

import sys

from stylealigned_desktop.cli import main

sys.exit(main())
