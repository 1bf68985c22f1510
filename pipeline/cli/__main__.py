"""``python -m pipeline.cli ...``: the same as ``imri ...``."""

from pipeline.cli import main

main()
