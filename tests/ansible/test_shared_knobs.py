"""Settings several roles read are defined once (inventory/group_vars/all.yml): setting the
food11_dataset role's documented folder moves both the data set and what the engine reads."""

from __future__ import annotations

import pytest

from .conftest import LOCAL_INVENTORY, bench, food11_archive, read_json

pytestmark = pytest.mark.slow


def test_food11_dataset_dir_is_where_the_engine_reads_the_data(tmp_path):
    data_dir = tmp_path / "elsewhere" / "food11"
    archive = food11_archive(tmp_path / "food11.zip", per_class=1)

    run = bench(tmp_path, [LOCAL_INVENTORY], extravars={
        "profile": "smoke", "variants": "onnx-cpu",
        "food11_dataset_enabled": True, "food11_dataset_dir": str(data_dir),
        "food11_dataset_archive": str(archive),
        # The folder is ours: no sudo, whoever runs the test.
        "bench_become": False,
    })

    assert run.ok, (run.rc, run.status, run.artifact_dir)
    # The role laid the tree out there...
    assert sorted(p.name for p in (data_dir / "evaluation" / "class_03").iterdir()) == ["3_0.jpg"]
    # ...and the engine read that very tree, not its synthetic stand-in.
    record = read_json(run.run_dir / "localhost" / "onnx-cpu.json")
    assert record["status"] == "ok", record.get("reason")
    assert record["data"]["source"] == "food11" and not record["data"]["synthetic"]
    assert record["data"]["root"] == str(data_dir)
    assert record["data"]["counts"]["evaluation"] == 11
