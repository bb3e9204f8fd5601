"""Run notebooks/study.ipynb headless with nbclient, parameters injected the way papermill does
(a cell tagged ``injected-parameters`` right after the one tagged ``parameters``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "study.ipynb"


def with_parameters(nb, params: dict[str, Any]):
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    cell = nbformat.v4.new_code_cell("\n".join(f"{k} = {v!r}" for k, v in params.items()))
    cell.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(index + 1, cell)
    return nb


def execute(params: dict[str, Any], timeout: int = 600) -> tuple[Any, CellExecutionError | None]:
    """The executed notebook and the error that stopped it (None when every cell ran)."""
    nb = with_parameters(nbformat.read(NOTEBOOK, as_version=4), params)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    try:
        client.execute(env=dict(os.environ))
    except CellExecutionError as exc:
        return nb, exc
    return nb, None


def outputs_text(nb) -> str:
    """Every output of every cell as text: streams, markdown, plain text, html, errors."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                parts.append(out.get("text", ""))
            elif out.get("output_type") == "error":
                parts.append(f"{out.get('ename')}: {out.get('evalue')}")
            for mime in ("text/markdown", "text/plain", "text/html"):
                if mime in out.get("data", {}):
                    parts.append(out["data"][mime])
    return "\n".join(parts)


def leftover_processes(marker: str) -> list[str]:
    """Command lines of processes still running that mention ``marker`` (a test's tmp path)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            found.append(f"{proc.name}: {cmdline}")
    return found
