"""``python -m servebench_engine.energy [SECONDS]``: what this node can measure, as one JSON
object: the sources found, why each other one is missing, and the idle draw over SECONDS
(default 5; lengthened to the sources' minimum window)."""

from __future__ import annotations

import json
import math
import sys

from . import detect


def main(argv: list[str]) -> int:
    try:
        seconds = float(argv[0]) if argv else 5.0
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds >= 0) or len(argv) > 1:
        print(f"error: one argument, the idle seconds, a number >= 0, not {' '.join(argv)!r} "
              "(e.g. 5)", file=sys.stderr)
        return 2
    meter = detect()
    try:
        idle = meter.idle(seconds)
    finally:
        meter.close()
    print(json.dumps({"source": meter.label, "min_window_s": meter.min_window_s,
                      "update_period_s": meter.period_s, "idle": idle,
                      "unavailable": meter.unavailable}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
