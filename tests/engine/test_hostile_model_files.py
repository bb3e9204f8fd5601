"""Model files are data: a .pth that would run code when unpickled is refused before it runs,
unless the user opts in (--allow-pickle / allow_pickle=True) for a file they trust."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="torch not installed: .pth models need it")

from servebench_engine.model import prepare_model, torch_factory, torch_source  # noqa: E402

# The console script installed beside this interpreter (pip install -e .).
BENCH_RUN = Path(sys.executable).with_name("bench-run")


class Payload:
    """What a hostile .pth holds: unpickling it calls os.system."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pth_that_runs_code_is_refused_before_it_runs(tmp_path):
    marker = tmp_path / "marker"
    torch.save(Payload(marker), tmp_path / "evil.pth")
    out = tmp_path / "out"
    r = subprocess.run([str(BENCH_RUN), "--model",
                        str(tmp_path / "evil.pth"), "--variants", "onnx-cpu",
                        "--profile", "smoke", "--out", str(out)],
                       capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 2, r.stderr
    assert "would run code from the file" in r.stderr and "--allow-pickle" in r.stderr
    assert "posix.system" in r.stderr  # what the file names
    assert r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1
    assert not marker.exists()
    assert not out.exists()


def test_a_whole_pickled_module_is_served_only_with_the_opt_in(tmp_path):
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(4, 7)).eval()
    torch.save(net, tmp_path / "whole.pth")
    staging = tmp_path / "staging"
    staging.mkdir()
    m = prepare_model(tmp_path / "whole.pth", staging, allow_pickle=True)
    assert (m.format, m.num_classes) == ("pth", 7)
    # The worker child honours the same opt-in, and only with it.
    source = torch_source(m, tmp_path, allow_pickle=True)
    assert source["allow_pickle"] is True
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(torch_factory(source)()(x), net(x))
    refused = torch_factory(torch_source(m, tmp_path))
    from servebench_engine.errors import InputError
    with pytest.raises(InputError, match="would run code from the file"):
        refused()
