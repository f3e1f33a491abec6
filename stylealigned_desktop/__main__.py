"""``python -m stylealigned_desktop`` starts the desktop window."""

from stylealigned_desktop.ui.app import main

raise SystemExit(main())
