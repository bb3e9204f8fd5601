"""``python -m servebench_engine.load MODEL.onnx``: the load mode on one ONNX model, served the
way the ``onnx-cpu`` variant serves it (its session options and provider guard), printed as
JSON. For trying the load mode by hand before it is part of a suite run."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from . import LOAD_PROFILES, run_load


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m servebench_engine.load")
    parser.add_argument("model", type=Path, help="an .onnx file")
    parser.add_argument("--profile", choices=sorted(LOAD_PROFILES), default="quick")
    parser.add_argument("--bound-ms", type=float, help="p99 bound of the knee")
    parser.add_argument("--out", type=Path, help="write the JSON here instead of stdout")
    args = parser.parse_args(argv)
    if not args.model.is_file():
        print(f"error: no model at {args.model} (give an .onnx file)", file=sys.stderr)
        return 2
    # onnxruntime only here: the load package itself runs on any runtime's factory.
    from ..variants.onnx_runtime import CPU, open_session, served_from, session_options

    def factory(threads: int):
        session = open_session(args.model, [CPU], session_options(None, threads))
        return served_from(session, args.model, [CPU], {}).infer

    first = open_session(args.model, [CPU], session_options(None, None)).get_inputs()[0]
    shape = [1] + [d if isinstance(d, int) else 224 for d in first.shape[1:]]
    sample = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    settings = LOAD_PROFILES[args.profile]
    if args.bound_ms:
        settings = replace(settings, p99_bound_ms=args.bound_ms)
    result = run_load(factory, sample, settings,
                      progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    text = json.dumps({"model": str(args.model), "profile": args.profile, **result}, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
