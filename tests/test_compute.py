"""sentinelle.compute: per-message work in this process below compute.min_rows (Dask never
imported), as Dask tasks above it, on a LocalCluster and on a real `dask scheduler` with two
`dask worker` processes; the stages' outputs are the same bytes either way."""

from __future__ import annotations

import gc
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dask_cluster import cluster, dask_cli, start, stop  # noqa: F401 (a fixture)
from helpers import ROOT, env, write_params
from sentinelle import collector, compute, io
from sentinelle.data.sources import bundled_bytes
from sentinelle.params import read
from sentinelle.text.canonical import canonical_many
from sentinelle.text.normaliser import Normaliser

LINES = bundled_bytes().decode("utf-8").splitlines(keepends=True)
TEXTS = [line.partition("\t")[2].strip() for line in LINES]


def test_below_min_rows_the_work_is_here_and_dask_is_never_imported() -> None:
    code = (
        "import sys\n"
        "from sentinelle import compute\n"
        "from sentinelle.text.normaliser import Normaliser\n"
        "from sentinelle.modeling.fast import counting\n"
        "compute.configure(compute.Settings('local', min_rows=10_000))\n"
        "Normaliser(stem=True).many(['Free entry, call 0800 now'] * 9_999)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env(), check=True
    )
    assert out.stdout.strip() == "[]"


def _pid(item: int, offset: int) -> tuple[int, int]:
    return item + offset, os.getpid()


def test_a_local_cluster_gives_the_serial_results_in_order() -> None:
    serial = canonical_many(TEXTS)
    normalise = Normaliser(stem=True)
    normalised = normalise.many(TEXTS)
    with compute.session(compute.Settings("local", workers=2, partition_rows=1000, min_rows=0)):
        assert canonical_many(TEXTS) == serial  # 6 pieces, as tasks
        assert normalise.many(TEXTS) == normalised
        out = list(compute.ordered_map(_pid, range(12), 12, 100))
        client, workers, _ = compute._active
        # The workers run the garbage collector as the stages do (collector.relax).
        assert list(client.run(gc.get_threshold).values()) == [collector.THRESHOLD] * 2
    assert workers == 2 and client.status == "closed"  # stopped with the session
    assert [value for value, _ in out] == list(range(100, 112))
    pids = {pid for _, pid in out}
    assert os.getpid() not in pids and len(pids) == 2
    assert compute.settings() == compute.Settings()  # as before the session


def _page_faults_of_a_reused_array(client: object) -> dict[str, int]:
    """In each worker of ``client``: the minor page faults of filling a new 4 MiB array 200
    times, each freed."""

    def faults() -> int:  # nested, so it travels by value: workers need not import this file
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(200):
            np.ones(1 << 19)
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    return client.run(faults)


def test_local_workers_reuse_freed_memory_as_the_stages_do() -> None:
    # Dask's MALLOC_TRIM_THRESHOLD_=65536 maps every array over 128 KiB fresh: ~100K faults
    # here (every new array's pages faulted in again; docs/performance.md).
    with compute.client_for("local", 2) as (client, _, _):
        faults = _page_faults_of_a_reused_array(client)
    assert len(faults) == 2
    assert max(faults.values()) < 10_000, faults  # ~1,000: the first array's pages only


def test_every_worker_runs_the_collector_as_the_stages_do(
    cluster: tuple[str, list[subprocess.Popen[bytes]]],  # noqa: F811 (the fixture)
    tmp_path: Path,
) -> None:
    # Python's default collector slows Python-heavy tasks (docs/performance.md).
    address, _ = cluster
    with compute.client_for(address) as (client, _, workers):
        assert workers == 2
        assert set(client.run(gc.get_threshold).values()) == {collector.THRESHOLD}
        # Started with the README's environment, they reuse freed memory (glibc's defaults).
        assert max(_page_faults_of_a_reused_array(client).values()) < 10_000
        late = start(
            dask_cli("worker", address, "--host", "127.0.0.1", "--nthreads", "1", "--no-dashboard"),
            tmp_path / "late-worker.log",
        )
        try:  # a worker that joins later (or is restarted) gets it too
            client.wait_for_workers(3, timeout=120)
            assert list(client.run(gc.get_threshold).values()) == [collector.THRESHOLD] * 3
        finally:
            stop(late)


def _stage(workdir: Path, stage: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "src" / f"{stage}.py")],
        cwd=workdir,
        capture_output=True,
        text=True,
        env=env(),
        timeout=600,
    )


def _workdir(tmp: Path, source: str, **compute_params: object) -> Path:
    params = read(ROOT / "params.yaml")
    params["ingest"]["source"] = source
    params["compute"].update(compute_params)
    tmp.mkdir()
    write_params(tmp / "params.yaml", params)
    return tmp


def _outputs(workdir: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(workdir)): path.read_bytes()
        for folder in ("data/raw", "data/processed")
        for path in sorted((workdir / folder).rglob("*"))
        if path.is_file()
    }


@pytest.mark.slow  # a real dask scheduler and workers
def test_partitions_on_a_real_cluster_are_the_bytes_of_the_serial_run(
    cluster: tuple[str, list[subprocess.Popen[bytes]]],  # noqa: F811 (the fixture)
    tmp_path: Path,
) -> None:
    address, _ = cluster
    parts = tmp_path / "parts"
    parts.mkdir()
    for i in range(7):  # the bundled file as 7 partitions
        (parts / f"part-{i}.tsv").write_text(
            "".join(LINES[i::7][:1] + LINES[i * 700 : (i + 1) * 700])
        )
    runs = {
        "cluster": _workdir(
            tmp_path / "cluster", str(parts), scheduler=address, partition_rows=1000, min_rows=0
        ),
        "serial": _workdir(tmp_path / "serial", str(parts), scheduler="none", partition_rows=1000),
    }
    for name, workdir in runs.items():
        for stage in ("ingest", "preprocess"):
            done = _stage(workdir, stage)
            assert done.returncode == 0, f"{name} {stage}: {done.stderr}"
            assert ("compute: scheduler" in done.stderr) == (name == "cluster"), done.stderr
    cluster_out, serial_out = _outputs(runs["cluster"]), _outputs(runs["serial"])
    assert cluster_out == serial_out
    # More rows than compute.partition_rows: partitioned tables of 1000-row parts.
    assert "data/raw/train.parquet/part-00003.parquet" in cluster_out
    assert "data/processed/train.parquet/part-00003.parquet" in cluster_out
    assert "data/processed/test.parquet" in cluster_out  # fewer rows: one file
    report = io.read_json(runs["cluster"] / "data/report.json")
    assert report["partitions"] == 7 and report["rows_read"] == len(LINES) + 7
    # The same rows in the same order as one file read whole, split into one file.
    whole = tmp_path / "whole.tsv"
    whole.write_text("".join((parts / f"part-{i}.tsv").read_text() for i in range(7)))
    single = _workdir(tmp_path / "single", str(whole), scheduler="none")
    for stage in ("ingest", "preprocess"):
        assert _stage(single, stage).returncode == 0
    for split in ("train", "test"):
        for folder in ("raw", "processed"):
            here = io.read_table(runs["cluster"] / f"data/{folder}/{split}.parquet")
            there = io.read_table(single / f"data/{folder}/{split}.parquet")
            assert here.equals(there), (folder, split)
    assert io.read_json(single / "data/report.json")["splits"] == report["splits"]
    # Splits of one file each, normalised in pieces as tasks: the bytes of the whole frame.
    pieces = _workdir(
        tmp_path / "pieces", str(whole), scheduler=address, partition_rows=4000, min_rows=0
    )
    for stage in ("ingest", "preprocess"):
        assert _stage(pieces, stage).returncode == 0
    assert _outputs(pieces) == _outputs(single)
    assert (pieces / "data/processed/train.parquet").is_file()  # 3,600 rows: 4 pieces of 1,000


def test_a_bad_row_in_a_partition_is_named_by_its_file_and_line(tmp_path: Path) -> None:
    parts = tmp_path / "parts"
    parts.mkdir()
    (parts / "a.tsv").write_text("".join(LINES[:100]))
    (parts / "b.tsv").write_text("".join(LINES[100:140]) + "maybe\tWin a prize\n")
    workdir = _workdir(tmp_path / "run", str(parts), scheduler="none")
    done = _stage(workdir, "ingest")
    assert done.returncode == 2
    assert f"{parts / 'b.tsv'}: line 41: 1 row(s) with a label" in done.stderr
    assert not (workdir / "data/raw").exists()


@pytest.mark.parametrize("value", ["locale", "tcp:/host", "", "http://x"])
def test_a_bad_scheduler_is_refused_in_one_line(value: str) -> None:
    from sentinelle.errors import UserError
    from sentinelle.params import parse

    data = read(ROOT / "params.yaml")
    data["compute"]["scheduler"] = value
    with pytest.raises(UserError, match=r"compute.scheduler = .* must be a string"):
        parse(data)


def test_stage_flags_override_the_compute_params(tmp_path: Path) -> None:
    parts = tmp_path / "parts"
    parts.mkdir()
    for i in range(2):
        (parts / f"{i}.tsv").write_text("".join(LINES[i * 300 : (i + 1) * 300]))
    workdir = _workdir(tmp_path / "run", str(parts), scheduler="none", min_rows=0)
    done = subprocess.run(
        [sys.executable, str(ROOT / "src/ingest.py"), "--scheduler", "local", "--workers", "1"],
        cwd=workdir, capture_output=True, text=True, env=env(), timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "ingest: compute: local cluster of 1 workers" in done.stderr
    bad = subprocess.run(
        [sys.executable, str(ROOT / "src/ingest.py"), "--scheduler", "tcp:/x"],
        cwd=workdir, capture_output=True, text=True, env=env(), timeout=300,
    )  # fmt: skip
    assert bad.returncode == 2
    # Without flags, errors name settings.yaml (where compute lives) alone.
    (workdir / "settings.yaml").write_text(
        (workdir / "settings.yaml").read_text().replace("min_rows: 0", "min_rows: -1")
    )
    plain = _stage(workdir, "ingest")
    assert plain.returncode == 2
    assert plain.stderr.startswith("ingest: error: settings.yaml: compute.min_rows = -1 is invalid")
    assert bad.stderr.strip().splitlines() == [
        "ingest: error: settings.yaml with compute.scheduler from the command line: "
        "compute.scheduler = 'tcp:/x' is invalid: must be a string 'none', 'local' or a "
        "scheduler address such as tcp://host:8786"
    ]


def _lengths(texts: list[str]) -> list[int]:
    return [len(t) for t in texts]


def test_pieces_travel_as_one_pickle_not_element_by_element(monkeypatch) -> None:
    # distributed walks a list argument element by element (dask._task_spec.parse_input once per
    # element: 250K texts cost 14 s to a worker and back, 1 s boxed). ordered_map boxes them.
    import dask._task_spec as task_spec

    calls = []
    walk = task_spec.parse_input
    monkeypatch.setattr(task_spec, "parse_input", lambda obj: calls.append(1) or walk(obj))
    pieces = [TEXTS[:2000], TEXTS[2000:4000]]
    with compute.session(compute.Settings("local", workers=1, min_rows=0)):
        out = list(compute.ordered_map(_lengths, pieces, 4000))
    assert out == [_lengths(piece) for piece in pieces]
    assert len(calls) < 50  # a few per task, not one per text
