"""The progress view replayed on a recorded event stream: ansible-runner's job events of a real
`bench.yml` smoke run on localhost (-e variants=onnx-cpu,onnx-optimized; tests/study/fixtures,
paths replaced by @REPO@ / @RESULTS@), with the two records that run's engine wrote.

That run's collect failed (a colleague's collect change under way when it was recorded), so the
stream also shows how a failed host is displayed.
"""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import pytest

from servebench.progress import (JobEventsDir, JsonLines, LiveView, PlainView, Progress,
                                 choose_view, follow)

FIXTURES = Path(__file__).parent / "fixtures"
RUN_ID = "20261204T175339Z-local-smoke"
VARIANTS = ["onnx-cpu", "onnx-optimized"]


def recorded_events(repo: Path, results: Path) -> list[dict]:
    text = (FIXTURES / "smoke_events.jsonl").read_text()
    text = text.replace("@REPO@", str(repo)).replace("@RESULTS@", str(results))
    return [json.loads(line) for line in text.splitlines()]


def land_records(repo: Path) -> Path:
    """The engine's records where the run's node folder had them."""
    out = repo / ".servebench" / "node" / "runs" / RUN_ID / "local"
    out.mkdir(parents=True)
    for variant in VARIANTS:
        shutil.copy(FIXTURES / f"{variant}.json", out / f"{variant}.json")
    return out


def p50_of(variant: str) -> float:
    return json.loads((FIXTURES / f"{variant}.json").read_text())["latency_ms"]["p50"]


def replay(events: list[dict], view: PlainView) -> tuple[Progress, list[tuple[int, int]]]:
    """Feed every event; after each, (records landed so far, records the view counts)."""
    progress, seen = Progress(), []
    landed = 0
    for event in events:
        data = event["event_data"]
        if event["event"] == "runner_item_on_ok" and data.get("task", "").startswith(
                "Benchmark | wait for each variant's record"):
            landed += 1
        if progress.feed(event):
            view.update(progress, 0.0)
        entry = progress.hosts.get("localhost")
        seen.append((landed, entry.done if entry else 0))
    return progress, seen


def test_counts_and_p50_match_the_records_that_landed(tmp_path):
    land_records(tmp_path / "repo")
    out = io.StringIO()
    progress, seen = replay(recorded_events(tmp_path / "repo", tmp_path / "results"), PlainView(out))

    assert all(landed == shown for landed, shown in seen)
    host = progress.hosts["localhost"]
    assert (host.done, host.planned, host.last) == (2, 2, "onnx-optimized")
    assert host.last_p50_ms == pytest.approx(p50_of("onnx-optimized"))
    assert progress.run_dir == tmp_path / "results" / RUN_ID and progress.finished
    # The collect failure of that run, with the stage it happened in.
    assert host.failed.startswith("collect: Collect | move what was fetched whole into place")

    lines = out.getvalue().splitlines()
    counts = [m.group(1) for m in (re.search(r"localhost: \w+, (\d/\d) variants", l) for l in lines) if m]
    # The planned count is known before the first record lands (0/2), then each record adds one.
    assert counts[0] == "0/2" and "1/2" in counts and counts[-1] == "2/2"
    for variant in VARIANTS:
        assert any(f"last {variant} p50 {p50_of(variant):.3f} ms" in l for l in lines), lines
    # Read from each record as it lands, not later from the runtime's summary.
    assert "pending" not in out.getvalue()


def test_plain_lines_when_not_a_terminal(tmp_path):
    land_records(tmp_path / "repo")
    out = io.StringIO()
    view = choose_view(out, {})
    assert type(view) is PlainView
    replay(recorded_events(tmp_path / "repo", tmp_path / "results"), view)
    text = out.getvalue()
    assert "\x1b" not in text and "\r" not in text
    lines = text.splitlines()
    # One line per change: no line printed twice in a row, stages in the playbook's order.
    assert all(a != b for a, b in zip(lines, lines[1:]))
    stages = [m.group(1) for m in (re.match(rf"run {RUN_ID}: (\w+)$", l) for l in lines) if m]
    assert stages == ["plan", "setup", "prepare", "benchmark", "collect", "report", "finished"]


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_live_view_on_a_terminal_plain_under_ci(tmp_path):
    assert type(choose_view(FakeTty(), {})) is LiveView
    assert type(choose_view(FakeTty(), {"CI": "true"})) is PlainView
    land_records(tmp_path / "repo")
    out = FakeTty()
    replay(recorded_events(tmp_path / "repo", tmp_path / "results"), LiveView(out))
    frames = out.getvalue().split("\x1b[2F")  # header + one host: redrawn two lines up
    assert len(frames) > 5
    # The failed host stays at the stage it failed in.
    assert "localhost: collect, 2/2 variants, last onnx-optimized p50" in frames[-1]
    assert frames[-1].startswith(f"\x1b[2Krun {RUN_ID}: finished")


def test_p50_from_the_summary_when_the_record_is_not_visible_here(tmp_path):
    # A remote node's records are not on this machine until collect: the role's summary says.
    out = io.StringIO()
    progress, _ = replay(recorded_events(tmp_path / "repo", tmp_path / "results"), PlainView(out))
    host = progress.hosts["localhost"]
    assert host.done == 2
    assert host.last_p50_ms == pytest.approx(round(p50_of("onnx-optimized"), 3))
    assert "last onnx-cpu p50 pending" in out.getvalue()


def test_sources_read_only_whole_events(tmp_path):
    events = recorded_events(tmp_path, tmp_path)[:3]
    folder = tmp_path / "job_events"
    folder.mkdir()
    (folder / "1-a.json").write_text(json.dumps(events[0]))
    (folder / "3-c.json").write_text(json.dumps(events[2]))
    (folder / "2-b.json").write_text(json.dumps(events[1])[:20])  # being written
    source = JobEventsDir(folder)
    assert [e["counter"] for e in source.read()] == [1]
    (folder / "2-b.json").write_text(json.dumps(events[1]))
    assert [e["counter"] for e in source.read()] == [2, 3]

    lines = tmp_path / "events.jsonl"
    lines.write_text(json.dumps(events[0]) + "\n" + json.dumps(events[1])[:15])
    tail = JsonLines(lines)
    assert [e["counter"] for e in tail.read()] == [1]
    with lines.open("a") as handle:
        handle.write(json.dumps(events[1])[15:] + "\n")
    assert [e["counter"] for e in tail.read()] == [2]


def test_follow_feeds_until_the_run_ends(tmp_path):
    land_records(tmp_path / "repo")
    events = recorded_events(tmp_path / "repo", tmp_path / "results")
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    progress, out = Progress(), io.StringIO()
    follow(JsonLines(path), progress, PlainView(out), alive=lambda: False, interval_s=0)
    assert progress.finished and progress.hosts["localhost"].done == 2
