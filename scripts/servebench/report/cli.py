"""`bench-report`: turn a run folder into report.md, report.html and plots with a verdict."""

from __future__ import annotations

from pathlib import Path

import click

from ..command import OneLineCommand
from .load import load_run
from .render import write_report
from .targets import load_targets


@click.command(cls=OneLineCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--targets", "targets_file", type=click.Path(path_type=Path, dir_okay=False),
              default=None,
              help="targets.yml to judge against (default: the targets.yml shipped with "
                   "servebench, the one at the repo root).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Folder to write report.md, report.html and plots/ into (default: RUN_DIR).")
def main(run_dir: Path, targets_file: Path | None, out_dir: Path | None) -> None:
    """Write the report of one benchmark run.

    RUN_DIR is a run folder, results/<run-id>, or results/latest. The report judges every
    variant on every host against the targets and shows which meet which; results from a local
    host are indicative, since local is not the target hardware. Nothing is written unless the
    whole report renders.
    """
    targets = load_targets(targets_file)
    run = load_run(run_dir)
    written = write_report(run, targets, out_dir or run_dir)
    for path in written.paths:
        click.echo(f"wrote {path}")
    click.echo(f"verdict for run {run.run_id}:")
    for line in written.summary:
        click.echo(f"  {line}")
