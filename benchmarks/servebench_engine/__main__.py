"""``python -m servebench_engine``: the same as ``bench-run`` (for a copied benchmarks/ folder)."""

import sys

from .cli import main

sys.exit(main())
