"""Benchmark (not a test; pytest does not collect it): what the engine's harness adds to a call.

Times the same ONNX Runtime CPU session two ways, in alternating rounds so drifting machine
load hits both alike:

* engine: ``measure.timed_loop`` over ``Served.infer`` exactly as ``bench-run`` measures
  ``onnx-cpu`` (the closure, the input-dict build, the loop's bookkeeping);
* bare: ``session.run`` in a plain ``for`` loop with ``perf_counter_ns`` around each call.

Prints the p50 of each and their ratio (engine / bare; 1.00 means no measurable overhead).

    .venv/bin/python tests/perf/harness_overhead.py [--model PATH] [--rounds 5] [--seconds 2]

Default model: the shared INT8 Food-11 model (../shared/data or $SERVEBENCH_SHARED_DATA), else a
random-init MobileNetV2 exported here (needs torch).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

from servebench_engine import measure  # noqa: E402
from servebench_engine.model import prepare_model  # noqa: E402
from servebench_engine.profiles import LoopSpec  # noqa: E402
from servebench_engine.stats import nearest_rank  # noqa: E402
from servebench_engine.variants.onnx_runtime import (CPU, open_session, served_from,  # noqa: E402
                                                     session_options)


def default_model() -> Path | None:
    shared = Path(os.environ.get("SERVEBENCH_SHARED_DATA", REPO.parent / "shared" / "data"))
    path = shared / "models" / "food11_quantized_aggressive.onnx"
    return path if path.is_file() else None


def bare_loop(session, name: str, x: np.ndarray, count: int) -> list[int]:
    clock = time.perf_counter_ns
    feed = {name: x}
    samples = []
    for _ in range(count):
        t0 = clock()
        session.run(None, feed)
        samples.append(clock() - t0)
    return samples


def p50_ms(samples: list[int]) -> float:
    return nearest_rank(sorted(samples), 50) / 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=default_model())
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=2.0, help="measuring time per round and side")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        model = prepare_model(args.model, Path(tmp))
        session = open_session(model.onnx_path, [CPU], session_options("disable_all", args.threads))
        served = served_from(session, model.onnx_path, [CPU], {})
        name = session.get_inputs()[0].name
        x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
        spec = LoopSpec(warmup_count=20, warmup_s=0.2, min_count=100, min_s=args.seconds,
                        max_count=10**7, max_s=args.seconds * 2)
        print(f"model: {model.source} ({model.onnx_path.name}); {args.rounds} rounds of "
              f"~{args.seconds:.1f} s per side; load average {os.getloadavg()[0]:.2f}")
        engine_all, bare_all, ratios = [], [], []
        for r in range(1, args.rounds + 1):
            engine = measure.timed_loop(lambda: served.infer(x), spec).samples_ns
            bare_loop(session, name, x, spec.warmup_count)
            bare = bare_loop(session, name, x, len(engine))
            engine_all += engine
            bare_all += bare
            ratios.append(p50_ms(engine) / p50_ms(bare))
            print(f"round {r}: engine p50 {p50_ms(engine):.4f} ms  bare p50 {p50_ms(bare):.4f} ms"
                  f"  ratio {ratios[-1]:.4f}  (n={len(engine)})")
        print(f"all rounds: engine p50 {p50_ms(engine_all):.4f} ms, bare session.run p50 "
              f"{p50_ms(bare_all):.4f} ms, ratio {p50_ms(engine_all) / p50_ms(bare_all):.4f} "
              f"(median of round ratios {statistics.median(ratios):.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
