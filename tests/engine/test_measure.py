"""The timed loop's stopping rule, the batch plan and the accuracy count."""

from __future__ import annotations

import time

import numpy as np
import pytest

from servebench_engine.context import Split
from servebench_engine.measure import accuracy, batch_plan, timed_loop
from servebench_engine.profiles import PROFILES, LoopSpec
from servebench_engine.variants.base import Served


def test_count_minimum_binds_when_calls_are_fast():
    loop = timed_loop(lambda: None, LoopSpec(0, 0.0, 200, 0.0, 10_000, 5.0))
    assert len(loop.samples_ns) == 200 and loop.minimums_met
    assert all(isinstance(s, int) and s >= 0 for s in loop.samples_ns)


def test_duration_minimum_binds_when_count_is_reached_early():
    loop = timed_loop(lambda: time.sleep(0.002), LoopSpec(0, 0.0, 3, 0.1, 10_000, 5.0))
    assert loop.duration_s >= 0.1
    assert len(loop.samples_ns) > 3 and loop.minimums_met
    assert min(loop.samples_ns) >= 2_000_000  # each sample covers the sleep it timed


def test_time_cap_stops_and_says_minimums_not_met():
    loop = timed_loop(lambda: time.sleep(0.01), LoopSpec(0, 0.0, 1_000, 0.0, 1_000, 0.05))
    assert 3 <= len(loop.samples_ns) < 1_000
    assert loop.minimums_met is False


def test_warmup_runs_by_count_and_time_and_is_not_sampled():
    calls = []
    loop = timed_loop(lambda: calls.append(1), LoopSpec(7, 0.0, 5, 0.0, 5, 1.0))
    assert len(calls) == 12 and len(loop.samples_ns) == 5
    calls.clear()
    start = time.perf_counter()
    timed_loop(lambda: calls.append(1), LoopSpec(1, 0.05, 1, 0.0, 1, 1.0))
    assert time.perf_counter() - start >= 0.05 and len(calls) > 2


def test_warmup_of_a_slow_call_is_bounded_by_the_time_cap():
    calls = []
    loop = timed_loop(lambda: (calls.append(1), time.sleep(0.03)),
                      LoopSpec(50, 0.0, 1, 0.0, 1, 0.05))
    # Two warm-up calls pass the 0.05 s cap, then the one measured call: not 50 + 1.
    assert len(calls) == 3 and len(loop.samples_ns) == 1


def test_inconsistent_spec_is_refused():
    with pytest.raises(ValueError):
        LoopSpec(0, 0.0, 10, 5.0, 100, 1.0)  # minimum duration above its cap


def test_profiles_full_is_statistically_sound_and_quick_is_short():
    full, quick = PROFILES["full"], PROFILES["quick"]
    assert full.single.min_count >= 1000 and full.single.min_s >= 10
    assert full.batch.min_s >= 10
    per_repeat_cap = quick.single.max_s + quick.single.warmup_s + quick.batch.max_s
    assert per_repeat_cap * quick.repeats <= 5  # 10 variants stay inside the 3-minute budget
    assert full.batch_size == quick.batch_size == 32


@pytest.mark.parametrize("max_batch, plan", [
    (None, (1, 32, "batched")),
    (64, (1, 32, "batched")),
    (1, (32, 1, "sequential")),
    (8, (4, 8, "chunked")),
    (5, (7, 5, "chunked")),
])
def test_batch_plan(max_batch, plan):
    assert batch_plan(32, max_batch) == plan


def test_accuracy_counts_in_batches_the_model_accepts():
    labels = np.array([0, 1, 2, 0, 0, 1, 2])
    split = Split(images=np.zeros((7, 3, 224, 224), np.float32), labels=labels)
    seen = []

    def always_class_zero(x):
        seen.append(len(x))
        assert len(x) <= 3
        out = np.zeros((len(x), 11), np.float32)
        out[:, 0] = 1
        return out

    served = Served(infer=always_class_zero, model_path=None, max_batch=3)
    result = accuracy(served, split, num_classes=11, batch_size=32)
    assert result == {"correct": 3, "total": 7, "value": 3 / 7}
    assert seen == [3, 3, 1]


def test_accuracy_rejects_logits_of_the_wrong_shape():
    split = Split(images=np.zeros((2, 3, 224, 224), np.float32), labels=np.array([0, 1]))
    served = Served(infer=lambda x: np.zeros((len(x), 10)), model_path=None)
    with pytest.raises(ValueError, match=r"shape \(2, 10\), expected \(2, 11\)"):
        accuracy(served, split, num_classes=11, batch_size=32)


def test_model_size_counts_what_serves(tmp_path):
    from servebench_engine.variant_run import model_size

    (tmp_path / "m.onnx").write_bytes(b"x" * 10)
    (tmp_path / "m.xml").write_bytes(b"x" * 3)
    (tmp_path / "m.bin").write_bytes(b"x" * 100)
    (tmp_path / "saved").mkdir()
    (tmp_path / "saved" / "a").write_bytes(b"x" * 7)
    (tmp_path / "saved" / "b").write_bytes(b"x" * 5)
    assert model_size(tmp_path / "m.onnx") == 10
    assert model_size(tmp_path / "m.xml") == 103  # OpenVINO IR: the graph and its weights
    assert model_size(tmp_path / "saved") == 12
    assert model_size(None) is None and model_size(tmp_path / "gone.onnx") is None


def test_peak_rss_reads_vmhwm_and_resets_it(tmp_path):
    from servebench_engine.measure import peak_rss_mb, reset_peak_rss

    (tmp_path / "status").write_text("Name:\tpython\nVmHWM:\t  204800 kB\nVmRSS:\t 1024 kB\n")
    assert peak_rss_mb(tmp_path) == 200.0
    assert reset_peak_rss(tmp_path) and (tmp_path / "clear_refs").read_text() == "5"
    assert reset_peak_rss(tmp_path / "missing") is False
    # This process, for real: the peak is at least what it holds now, and a reset brings it down
    # to about that (Linux >= 4.0).
    big = bytearray(64 << 20)
    big[::4096] = b"x" * len(big[::4096])
    before = peak_rss_mb()
    del big
    if reset_peak_rss():
        assert peak_rss_mb() < before - 32
