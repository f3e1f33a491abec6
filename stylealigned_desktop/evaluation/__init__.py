"""How well sets share one style (spec section 10), beside the engine: it uses the engine (run
folders, requests, ``Engine`` for the paper's suite); the engine never imports it. No Qt, no
command-line code (``cli/evaluate.py`` prints what these return).

- ``metrics.py``: DINO set consistency, CLIP text alignment, Inception Score, and their models;
- ``scoring.py``: run folders -> groups of sets -> the ``metrics.json`` document;
- ``report.py``: that document as ``metrics.json``, a Markdown table and a bar chart;
- ``paper_suite.py``: the paper's benchmark, generated and scored, resumable.

Kept import-light like ``engine/``: torch and the metric models load where used.
"""
