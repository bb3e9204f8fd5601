"""The study from Python (a notebook on Chameleon's JupyterHub): provision, run, read, report.

A thin layer over the code the commands run: provisioning and teardown are chi-up and chi-down
themselves (their Click commands, invoked in this process with the same options), the run is
``bench.yml`` through servebench.runner (ansible-runner) with the progress view fed from its job
events, and the report is bench-report's load_run / load_targets / write_report. Errors are the
commands' own exceptions (servebench.errors: ``exit_code`` is the command's exit status); a run
whose playbook fails raises :class:`RunFailed` (its ``run`` keeps the outcome and the report).

    study = Study()
    study.provision("tacc")                    # chi-up --site tacc
    outcome = study.run(profile="quick")       # bench.yml, progress shown as it goes
    outcome.report                             # the verdict and the plots, inline
    study.teardown()                           # chi-down of everything this study provisioned
"""

from __future__ import annotations

import base64
import contextlib
import getpass
import html
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import click

from . import progress as progress_mod
from .errors import ExitCode, ServebenchError, UsageError
from .runner import REPO, PlaybookRun, _free_ident, inventory_scope, new_run_id, run_playbook

LOCAL_INVENTORY = REPO / "inventory" / "local.yml"


class RunFailed(ServebenchError):
    """bench.yml failed (a host failed a stage, or the run itself): the results and the report
    of what finished are in the run folder. ``exit_code`` is ansible-playbook's."""

    def __init__(self, message: str, run: "RunOutcome", *, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.run = run
        self.exit_code = run.playbook.rc or ExitCode.BUG


def _invoke(command: click.Command, args: Sequence[str]) -> None:
    """Run a chi-* command's body as its console script does, raising its error instead of
    printing it (scrubbed of the secrets the command read, as the printed line is)."""
    try:
        ctx = command.make_context(command.name or "chi", list(args))
    except click.ClickException as exc:
        raise UsageError(exc.format_message(), hint="see the command's --help") from None
    with ctx:
        try:
            click.Command.invoke(command, ctx)
        except ServebenchError as exc:
            console = ctx.obj
            if console is not None and hasattr(console, "redact"):
                exc.args = (console.redact(str(exc)),)
                exc.hint = console.redact(exc.hint) if exc.hint else exc.hint
            raise


def _flags(options: Mapping[str, Any]) -> list[str]:
    """``{"duration": "3h", "keep": True}`` -> ``["--duration", "3h", "--keep"]``."""
    args: list[str] = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            args.append(flag)
        elif value not in (None, False):
            args += [flag, str(value)]
    return args


@dataclass
class Deployment:
    """What one chi-up made: a lease and one node, its inventory and state file."""

    site: str
    name: str
    workdir: Path

    @property
    def inventory(self) -> Path:
        from .provision.inventory import default_path

        return default_path(self.name, self.workdir)

    @property
    def state_file(self) -> Path:
        from .provision.state import default_path

        return default_path(self.name, self.workdir)

    def _repr_markdown_(self) -> str:
        return f"**{self.name}** at `{self.site}`: inventory `{self.inventory}`"


@dataclass
class Report:
    """bench-report's output for one run: the verdict lines and the files written."""

    run_id: str
    summary: tuple[str, ...]
    paths: tuple[Path, ...]

    @property
    def plots(self) -> list[Path]:
        return [p for p in self.paths if p.suffix == ".png"]

    def _repr_markdown_(self) -> str:
        lines = [f"### Verdict for run `{self.run_id}`", ""] + [f"- {line}" for line in self.summary]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        items = "".join(f"<li>{html.escape(line)}</li>" for line in self.summary)
        images = "".join(
            f'<figure><img alt="{html.escape(p.name)}" src="data:image/png;base64,'
            f'{base64.b64encode(p.read_bytes()).decode()}"/><figcaption>{html.escape(p.name)}'
            "</figcaption></figure>" for p in self.plots if p.is_file())
        return (f"<h3>Verdict for run <code>{html.escape(self.run_id)}</code></h3>"
                f"<ul>{items}</ul>{images}")


@dataclass
class RunOutcome:
    """A finished bench.yml run: the playbook's outcome, the last progress, the run folder."""

    playbook: PlaybookRun
    progress: progress_mod.Progress
    run_dir: Path
    report: Report | None = None

    @property
    def ok(self) -> bool:
        return self.playbook.ok

    @property
    def log(self) -> Path:
        """Ansible's full output of the run (ansible-runner's stdout)."""
        return self.playbook.artifact_dir / "stdout"

    def results(self):
        """The run as bench-report reads it (hosts, records, notes)."""
        from .report.load import load_run

        return load_run(self.run_dir)

    def check(self) -> "RunOutcome":
        if not self.ok:
            raise RunFailed(f"bench.yml {self.playbook.status} (exit {self.playbook.rc}) in run "
                            f"{self.run_dir.name}", self,
                            hint=f"the results and report of what finished are in {self.run_dir}; "
                                 f"Ansible's full log: {self.log}")
        return self

    def _repr_markdown_(self) -> str:
        lines = [f"run `{self.run_dir.name}`: **{'ok' if self.ok else self.playbook.status}**", ""]
        lines += [f"- {h.line()}" for h in self.progress.hosts.values()]
        lines += ["", f"full Ansible log: `{self.log}`"]
        return "\n".join(lines)


class NotebookView(progress_mod.PlainView):
    """The progress lines as one cell output, replaced in place as they change."""

    def __init__(self) -> None:
        from IPython.display import Markdown, display

        self._markdown = Markdown
        self._handle = display(Markdown("starting bench.yml"), display_id=True)

    def update(self, progress: progress_mod.Progress, elapsed_s: float) -> None:
        lines = progress.lines(elapsed_s)
        self._handle.update(self._markdown("\n".join([f"**{lines[0]}**", ""]
                                                     + [f"- {line.strip()}" for line in lines[1:]])))

    def close(self, progress, elapsed_s, footer) -> None:
        self.update(progress, elapsed_s)


def _interrupt_children(name: str) -> None:
    """SIGINT to this process's children running ``name`` (ansible-runner's ansible-playbook)."""
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and any(name.encode() in part for part in cmdline[:2]):
            with contextlib.suppress(OSError):
                os.kill(int(proc.name), signal.SIGINT)


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    return shell is not None and "ipykernel" in sys.modules


@dataclass
class Study:
    """One study: the deployments it made (torn down together) and where its runs go."""

    workdir: Path = REPO
    results_dir: Path | None = None
    deployments: list[Deployment] = field(default_factory=list)

    def provision(self, site: str, *, name: str | None = None, **options: Any) -> Deployment:
        """``chi-up --site SITE [--name NAME] [--OPTION VALUE...]`` (options as chi-up's, with
        underscores: duration="2h", wait_timeout=600, key="~/.ssh/id_rsa")."""
        from .provision import lease
        from .provision.cli import chi_up
        from .provision.sites import get_site

        name = name or get_site(site).default_lease_name(
            lease.user_slug(os.environ.get("USER") or getpass.getuser()))
        deployment = Deployment(site, lease.validate_name(name), Path(self.workdir))
        # Registered before the call: a chi-up that fails half-way rolls itself back, and one
        # interrupted past that is still torn down by teardown().
        if deployment.name not in {d.name for d in self.deployments}:
            self.deployments.append(deployment)
        with contextlib.chdir(self.workdir):
            _invoke(chi_up, ["--site", site, "--name", deployment.name, *_flags(options)])
        return deployment

    def teardown(self, **options: Any) -> None:
        """``chi-down --name NAME`` for every deployment of this study, all of them tried; the
        first error is raised after (TeardownError, exit 5, lists what is left)."""
        from .provision.cli import chi_down

        first: ServebenchError | None = None
        for deployment in list(self.deployments):
            try:
                with contextlib.chdir(self.workdir):
                    _invoke(chi_down, ["--name", deployment.name, "--site", deployment.site,
                                       *_flags(options)])
                self.deployments.remove(deployment)
            except ServebenchError as exc:
                first = first or exc
        if first is not None:
            raise first

    def teardown_on_failure(self, shell=None) -> None:
        """In IPython: when a cell fails (or is interrupted), tear down right then, inside that
        cell, before a headless run (papermill, nbclient) stops at it. A notebook's last cell
        tears down on success; this is its ``finally``."""
        shell = shell or __import__("IPython").get_ipython()

        def after_cell(result) -> None:
            if result.error_in_exec is None or not self.deployments:
                return
            print(f"a cell failed ({type(result.error_in_exec).__name__}): tearing down "
                  f"{', '.join(d.name for d in self.deployments)}")
            try:
                self.teardown()
            except ServebenchError as exc:
                print(f"error: {exc.format()}", file=sys.stderr)

        shell.events.register("post_run_cell", after_cell)

    def inventory(self) -> list[Path]:
        """localhost's inventory and the study's deployments' (not other chi_*.yml lying about)."""
        return [LOCAL_INVENTORY] + [d.inventory for d in self.deployments]

    def run(self, profile: str = "quick", variants: Sequence[str] | str = (), *,
            extra_vars: Mapping[str, Any] | None = None, check: bool = True,
            view: progress_mod.PlainView | None = None, timeout: int | None = None) -> RunOutcome:
        """``bench.yml -e profile=PROFILE [-e variants=...]`` on the study's nodes (localhost when
        it has none), with the progress view; then the report."""
        inventory = self.inventory()
        extra = {"profile": profile, **dict(extra_vars or {})}
        chosen = variants.split(",") if isinstance(variants, str) else list(variants)
        if chosen:
            extra["variants"] = ",".join(v.strip() for v in chosen if v.strip())
        results_dir = Path(self.results_dir or Path(self.workdir) / "results").resolve()
        extra["results_dir"] = str(results_dir)
        extra.setdefault("run_id", new_run_id(profile, inventory_scope(inventory)))
        run_dir = results_dir / str(extra["run_id"])
        events = progress_mod.JobEventsDir(run_dir / _free_ident(run_dir) / "job_events")
        if view is None:
            view = NotebookView() if _in_notebook() else progress_mod.choose_view(sys.stdout)

        done: dict[str, Any] = {}

        def play() -> None:
            try:
                done["run"] = run_playbook("bench.yml", inventory=inventory, extravars=extra,
                                           timeout=timeout)
            except BaseException as exc:  # noqa: BLE001 -- re-raised in the caller's thread
                done["error"] = exc

        worker = threading.Thread(target=play, name="bench.yml", daemon=True)
        progress, started = progress_mod.Progress(), time.monotonic()
        worker.start()
        try:
            progress_mod.follow(events, progress, view, alive=worker.is_alive, started=started)
        except BaseException:
            # Ctrl-C (a notebook's interrupt): stop ansible-playbook as a Ctrl-C in a terminal
            # would, so its hosts' engines stop, before a teardown removes the nodes.
            _interrupt_children("ansible-playbook")
            worker.join(timeout=300)
            raise
        worker.join()
        if "error" in done:
            raise done["error"]
        outcome = RunOutcome(done["run"], progress, run_dir)
        view.close(progress, time.monotonic() - started, [f"full Ansible log: {outcome.log}"])
        if (run_dir / "run.json").is_file():
            outcome.report = self.report(run_dir, extra.get("targets_file"))
        return outcome.check() if check else outcome

    def report(self, run_dir: Path, targets: Path | str | None = None) -> Report:
        """``bench-report RUN_DIR [--targets FILE]``: report.md, report.html, plots/, verdict."""
        from .report.load import load_run
        from .report.render import write_report
        from .report.targets import load_targets

        run = load_run(Path(run_dir))
        written = write_report(run, load_targets(Path(targets) if targets else None), Path(run_dir))
        return Report(run.run_id, written.summary, written.paths)
