"""The progress view of a bench.yml run: per host, the stage it is in, the records landed out of
those planned, and the last landed variant's median latency.

It is built from the playbook's event stream (ansible-runner's job events, or the same shape
written by the ``servebench_events`` callback) and from the engine's records: a record is counted
when the benchmark role's wait for it returns, and its p50 is read from the record itself where
this machine can see it (localhost's node folder, or the run folder once collected), else from
the role's per-runtime summary.

Views: a live block redrawn in place on a terminal; plain lines, one per change, when the output
is not a terminal or ``CI`` is set; a refreshed cell output in a notebook (servebench.study).

``python -m servebench.progress ARGS...`` runs ``ansible-playbook ARGS...`` with that view (what
``make bench`` does on a terminal): Ansible's own output goes to ``<run folder>/ansible.log``,
not the screen; on failure its last lines are shown.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, TextIO

STAGES = ("plan", "setup", "prepare", "benchmark", "collect", "report")
RUN_TASK = "Plan | fix the run id and the settings every play shares"
ENGINE_TASK = "Plan | keep what the engine said for every play"
RUNS_TASK = "Benchmark | run the engine once per runtime"
SETTINGS_TASK = "Benchmark | settings of the run for "
WAIT_TASK = "Benchmark | wait for each variant's record ("
SUMMARY_TASK = "Benchmark | results of "
FAILURE_TASK = "Record | mark the host failed in this stage"
RESULT_EVENTS = frozenset({"runner_on_ok", "runner_on_failed", "runner_item_on_ok",
                           "runner_item_on_failed", "runner_on_unreachable"})
# How many lines of Ansible's log a failed run shows under the view.
LOG_TAIL_LINES = 15
CALLBACK_DIR = Path(__file__).resolve().parents[2] / "callback_plugins"


@dataclass
class HostProgress:
    host: str
    stage: str = "waiting"
    planned: int | None = None
    done: int = 0
    last: str | None = None
    last_p50_ms: float | None = None
    failed: str | None = None

    def line(self) -> str:
        planned = "?" if self.planned is None else str(self.planned)
        text = f"{self.host}: {self.stage}, {self.done}/{planned} variants"
        if self.last:
            p50 = "p50 pending" if self.last_p50_ms is None else f"p50 {self.last_p50_ms:.3f} ms"
            text += f", last {self.last} {p50}"
        if self.failed:
            text += f", FAILED: {self.failed}"
        return text


def _record_p50(path: Path, host: str) -> float | None:
    """The record's batch-1 median, if ``path`` is that host's record as seen from here."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        p50 = record["latency_ms"]["p50"] if record.get("host") == host else None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return float(p50) if isinstance(p50, (int, float)) else None


class Progress:
    """What the view shows, updated event by event (``feed``)."""

    def __init__(self) -> None:
        self.hosts: dict[str, HostProgress] = {}
        self.run: dict[str, Any] = {}
        self.stage = "plan"
        self.finished = False
        self._selections: dict[str, list[str]] = {}
        self._planned: dict[str, dict[str, int]] = {}
        self._node_out: dict[str, Path] = {}

    @property
    def run_dir(self) -> Path | None:
        if not self.run.get("id") or not self.run.get("results_dir"):
            return None
        return Path(self.run["results_dir"]) / self.run["id"]

    def feed(self, event: Mapping[str, Any]) -> bool:
        """Take one event; True when what the view shows may have changed."""
        kind = event.get("event")
        data = event.get("event_data") or {}
        if kind == "playbook_on_play_start":
            stage = str(data.get("play", "")).split(" ", 1)[0].lower()
            changed = stage in STAGES and stage != self.stage
            self.stage = stage if stage in STAGES else self.stage
            return changed
        if kind == "playbook_on_stats":
            self.finished = True
            self._read_collected()
            return True
        if kind not in RESULT_EVENTS:
            return False
        task, host = str(data.get("task", "")), str(data.get("host", ""))
        res = data.get("res") if isinstance(data.get("res"), dict) else {}
        facts = res.get("ansible_facts") or {}
        if task == ENGINE_TASK:
            self._selections = (facts.get("bench_engine") or {}).get("selections") or {}
        elif task == RUN_TASK and "bench_run" in facts:
            self.run = facts["bench_run"]
            self.hosts = {h: self.hosts.get(h, HostProgress(h)) for h in self.run.get("targets", [])}
            return True
        entry = self.hosts.get(host)
        if entry is None:
            return False
        before = entry.line()
        if self.stage in STAGES and not entry.failed:
            entry.stage = self.stage
        if kind == "runner_on_unreachable" and not entry.failed:
            entry.failed = f"unreachable in {self.stage}"
        elif task == FAILURE_TASK and "bench_host_failure" in facts:
            entry.failed = str((facts["bench_host_failure"] or {}).get("reason") or "failed")
        elif task == RUNS_TASK and kind == "runner_item_on_ok":
            self._plan_runtime(host, res.get("benchmark_run") or {})
        elif task.startswith(SETTINGS_TASK) and "benchmark_run_variants" in facts:
            runtime = task[len(SETTINGS_TASK):]
            self._node_out[host] = Path(str(facts.get("benchmark_out", "")))
            self._set_planned(host, runtime, len(facts["benchmark_run_variants"]),
                              len(facts.get("benchmark_model_names") or []))
        elif task.startswith(WAIT_TASK) and kind == "runner_item_on_ok":
            entry.done += 1
            entry.last = str(res.get("item"))
            out = self._node_out.get(host)
            entry.last_p50_ms = _record_p50(out / f"{entry.last}.json", host) if out else None
        elif task.startswith(SUMMARY_TASK) and entry.last and entry.last_p50_ms is None:
            entry.last_p50_ms = _summary_p50(str(res.get("msg", "")), entry.last)
        return entry.line() != before

    def _plan_runtime(self, host: str, run: Mapping[str, Any]) -> None:
        """Planned records of one engine run before it starts, as the role will resolve them
        (the run's ids and groups, less ``without``, within -e variants); its own settings
        task replaces the estimate with the exact list when the run starts."""
        ids: list[str] = []
        for name in run.get("variants") or []:
            ids += [v for v in self._selections.get(name, [name]) if v not in ids]
        only = self.run.get("variants") or self._selections.get("all") or ids
        ids = [v for v in ids if v not in (run.get("without") or []) and v in only]
        models = self.run.get("models") or []
        self._set_planned(host, str(run.get("runtime")), len(ids), len(models) if len(models) > 1 else 0)

    def _set_planned(self, host: str, runtime: str, variants: int, models: int) -> None:
        self._planned.setdefault(host, {})[runtime] = variants * max(models, 1)
        self.hosts[host].planned = sum(self._planned[host].values())

    def _read_collected(self) -> None:
        """After the run: the p50 of each host's last variant from the collected record."""
        for entry in self.hosts.values():
            if entry.last and entry.last_p50_ms is None and self.run_dir:
                entry.last_p50_ms = _record_p50(self.run_dir / entry.host / f"{entry.last}.json",
                                                entry.host)

    def lines(self, elapsed_s: float | None = None) -> list[str]:
        run = self.run.get("id") or "(planning)"
        clock = f" [{int(elapsed_s) // 60}:{int(elapsed_s) % 60:02d}]" if elapsed_s is not None else ""
        state = "finished" if self.finished else self.stage
        return [f"run {run}: {state}{clock}"] + [f"  {h.line()}" for h in self.hosts.values()]


def _summary_p50(msg: str, variant: str) -> float | None:
    """``<variant>: ok, p50 1.234 ms`` from the role's per-runtime summary."""
    found = re.search(rf"^{re.escape(variant)}: ok, p50 ([0-9.]+) ms", msg, re.MULTILINE)
    return float(found.group(1)) if found else None


# -- event sources -------------------------------------------------------------------------------

class JobEventsDir:
    """ansible-runner's job_events/ folder, read in counter order as it grows."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._next = 1

    def read(self) -> list[dict[str, Any]]:
        try:
            names = {int(p.name.split("-", 1)[0]): p for p in self.folder.glob("*.json")}
        except (OSError, ValueError):
            return []
        events = []
        while self._next in names:
            try:
                events.append(json.loads(names[self._next].read_text(encoding="utf-8")))
            except ValueError:
                break  # still being written: read it on the next poll
            self._next += 1
        return events


class JsonLines:
    """A JSON-lines file (the servebench_events callback's), read line by line as it grows."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._offset = 0

    def read(self) -> list[dict[str, Any]]:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
        except OSError:
            return []
        complete = chunk[:chunk.rfind(b"\n") + 1]
        self._offset += len(complete)
        return [json.loads(line) for line in complete.decode("utf-8").splitlines() if line.strip()]


# -- views ---------------------------------------------------------------------------------------

class PlainView:
    """One line per change: for logs, pipes and CI."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._shown: dict[int, str] = {}

    def update(self, progress: Progress, elapsed_s: float) -> None:
        for index, line in enumerate(progress.lines()):
            if self._shown.get(index) != line:
                self._shown[index] = line
                self.stream.write(line.strip() + "\n")
        self.stream.flush()

    def close(self, progress: Progress, elapsed_s: float, footer: Iterable[str]) -> None:
        self.update(progress, elapsed_s)
        for line in footer:
            self.stream.write(line + "\n")
        self.stream.flush()


class LiveView(PlainView):
    """The same lines, redrawn in place (ANSI cursor moves) with the elapsed time."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._height = 0

    def update(self, progress: Progress, elapsed_s: float) -> None:
        width = shutil.get_terminal_size((100, 20)).columns - 1
        lines = [line[:width] for line in progress.lines(elapsed_s)]
        up = f"\x1b[{self._height}F" if self._height else ""
        self.stream.write(up + "".join(f"\x1b[2K{line}\n" for line in lines))
        # A block that shrank leaves no stale lines below it.
        self.stream.write("\x1b[J")
        self._height = len(lines)
        self.stream.flush()


def choose_view(stream: TextIO, environ: Mapping[str, str] = os.environ) -> PlainView:
    """Live on a terminal, plain lines when piped, redirected or under CI."""
    live = stream.isatty() and not environ.get("CI") and environ.get("TERM") != "dumb"
    return LiveView(stream) if live else PlainView(stream)


def follow(source, progress: Progress, view: PlainView, alive: Callable[[], bool],
           interval_s: float = 0.5, started: float | None = None) -> None:
    """Feed ``source``'s events to ``progress`` and ``view`` until ``alive()`` is false, then
    once more for the last events."""
    started = time.monotonic() if started is None else started
    last_draw = 0.0
    while True:
        running = alive()
        changed = any([progress.feed(event) for event in source.read()])
        now = time.monotonic()
        # A live view also redraws each second for its clock; a plain one only on change.
        if changed or (isinstance(view, LiveView) and now - last_draw >= 1):
            view.update(progress, now - started)
            last_draw = now
        if not running:
            return
        time.sleep(interval_s)


def keep_log(progress: Progress, log: Path) -> Path:
    """Move the run's Ansible log into its run folder when there is one."""
    run_dir = progress.run_dir
    if run_dir is None or not run_dir.is_dir():
        return log
    target = run_dir / "ansible.log"
    shutil.move(str(log), target)
    return target


def log_tail(log: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-lines:]


def playbook_env(environ: Mapping[str, str], events_file: Path) -> dict[str, str]:
    """ansible-playbook's environment (servebench.runner's allow-list) with the events callback."""
    from servebench.runner import passed_env

    env = passed_env(environ)
    plugins = [str(CALLBACK_DIR)] + [p for p in env.get("ANSIBLE_CALLBACK_PLUGINS", "").split(":") if p]
    enabled = [c for c in env.get("ANSIBLE_CALLBACKS_ENABLED", "").split(",") if c.strip()]
    env.update({"ANSIBLE_CALLBACK_PLUGINS": ":".join(plugins),
                "ANSIBLE_CALLBACKS_ENABLED": ",".join(enabled + ["servebench_events"]),
                "SERVEBENCH_EVENTS_FILE": str(events_file), "ANSIBLE_NOCOLOR": "1"})
    return env


def main(argv: list[str] | None = None, stream: TextIO | None = None) -> int:
    """``ansible-playbook ARGV`` with the progress view; returns its exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    stream = stream or sys.stdout
    # The ansible-playbook of this Python's environment, as servebench.runner runs it.
    tool = Path(sys.executable).with_name("ansible-playbook")
    command = [str(tool) if tool.is_file() else "ansible-playbook", *args]
    work = Path(tempfile.mkdtemp(prefix="servebench-progress-"))
    events, log = work / "events.jsonl", work / "ansible.log"
    events.touch(mode=0o600)
    view, progress, started = choose_view(stream), Progress(), time.monotonic()
    stream.write(f"ansible-playbook {' '.join(args)}\n(Ansible's output: {log}, moved to the "
                 "run folder at the end)\n")
    with log.open("wb") as out:
        try:
            proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                    env=playbook_env(os.environ, events))
        except OSError as exc:
            shutil.rmtree(work, ignore_errors=True)
            sys.stderr.write(f"error: cannot start {command[0]}: {exc.strerror} (install the "
                             "project's venv: make bench does)\n")
            return 2
        try:
            follow(JsonLines(events), progress, view, lambda: proc.poll() is None,
                   started=started)
        except KeyboardInterrupt:
            # ansible-playbook got the same Ctrl-C: let it stop its hosts' engines and exit.
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.terminate()
            follow(JsonLines(events), progress, view, lambda: False, started=started)
    rc = proc.wait()
    kept = keep_log(progress, log)
    footer = [] if rc == 0 else ["", f"ansible-playbook exited {rc}; the end of its log:",
                                 *(f"  {line}" for line in log_tail(kept))]
    view.close(progress, time.monotonic() - started, footer + [f"full log: {kept}"])
    events.unlink(missing_ok=True)
    if kept != log:
        shutil.rmtree(work, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
