"""`bench-report`: turn a run folder into report.md, report.html and plots with a verdict."""

from __future__ import annotations

from pathlib import Path

import click

from ..command import OneLineCommand
from ..errors import UsageError
from . import compare as cmp
from .load import load_run
from .render import write_report
from .targets import load_targets


@click.command(cls=OneLineCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False), required=False)
@click.option("--targets", "targets_file", type=click.Path(path_type=Path, dir_okay=False),
              default=None,
              help="targets.yml to judge against (default: the targets.yml shipped with "
                   "servebench, the one at the repo root).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Folder to write report.md, report.html and plots/ into (default: RUN_DIR); "
                   "with --compare, compare.md and compare.png (default: RUN_B/compare).")
@click.option("--compare", "compare_dirs", nargs=2, default=None,
              type=click.Path(path_type=Path, file_okay=False), metavar="RUN_A RUN_B",
              help="Compare two runs instead: B / A of the median latency per model x host x "
                   "variant, with a 95 % interval from the repeats and a significance call.")
@click.option("--fail-above", "fail_above", default=None, metavar="PERCENT",
              help="With --compare: exit 6 when a significant slowdown exceeds PERCENT "
                   "(e.g. 5%), measured over repeats (a regression gate for CI); exit 2 when "
                   "the gate judged nothing, or a row of both runs has no ratio (fails closed).")
def main(run_dir: Path | None, targets_file: Path | None, out_dir: Path | None,
         compare_dirs: tuple[Path, Path] | None, fail_above: str | None) -> None:
    """Write the report of one benchmark run, or compare two.

    RUN_DIR is a run folder, results/<run-id>, or results/latest. The report judges every
    variant on every host against the targets and shows which meet which (PASS, FAIL, or
    INCONCLUSIVE when the 95 % interval straddles the threshold or the percentile has too few
    samples); results from a local host are indicative, since local is not the target
    hardware. Nothing is written unless the whole report renders.
    """
    if compare_dirs:
        if run_dir is not None:
            raise UsageError("pass either RUN_DIR or --compare RUN_A RUN_B, not both")
        _compare(*compare_dirs, out_dir, fail_above)
        return
    if fail_above is not None:
        raise UsageError("--fail-above needs --compare RUN_A RUN_B")
    if run_dir is None:
        raise UsageError("missing RUN_DIR", hint="pass results/<run-id> or results/latest")
    targets = load_targets(targets_file)
    run = load_run(run_dir)
    written = write_report(run, targets, out_dir or run_dir)
    for path in written.paths:
        click.echo(f"wrote {path}")
    click.echo(f"verdict for run {run.run_id}:")
    for line in written.summary:
        click.echo(f"  {line}")


def _compare(dir_a: Path, dir_b: Path, out_dir: Path | None, fail_above: str | None) -> None:
    threshold = cmp.parse_threshold(fail_above) if fail_above is not None else None
    comparison = cmp.compare_runs(load_run(dir_a), load_run(dir_b))
    for path in cmp.write_comparison(comparison, out_dir or Path(dir_b) / "compare", threshold):
        click.echo(f"wrote {path}")
    click.echo(f"{comparison.run_b.run_id} (B) against {comparison.run_a.run_id} (A), "
               "B/A median latency [95 % CI]:")
    for line in cmp.text_lines(comparison):
        click.echo(f"  {line}")
    for host in comparison.unmatched:
        click.echo(f"  host {host}: no counterpart, not compared")
    for title, diffs in comparison.env_diffs:
        if diffs:
            click.echo(f"environment differences, {title}:")
            for key, a, b in diffs:
                click.echo(f"  {key}: {a} -> {b}")
    counts = cmp.describe(comparison)
    click.echo("summary: " + ", ".join(f"{n} {what}" for what, n in counts.items()))
    if threshold is not None:
        cmp.gate(comparison, threshold)
        click.echo(f"gate: no significant slowdown above {threshold * 100:g} %")
