"""bench-report: read a run folder, judge it against targets.yml, render report.md/.html and plots."""
