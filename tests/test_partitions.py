"""`sentinelle score` on partitions with Dask: in this process, and on a real cluster of a
`dask scheduler` and two `dask worker` processes on 127.0.0.1 (one killed mid-run)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import tiny_model
from dask_cluster import cluster  # noqa: F401 (a fixture)
from helpers import ROOT, env
from sentinelle.batch.files import score_file
from sentinelle.batch.partitions import score_partitions
from sentinelle.errors import UserError
from sentinelle.serving.scorer import Scorer

BUNDLED = ROOT / "data" / "external" / "sms_spam_collection.tsv"


def corpus(copies: int = 1) -> pd.DataFrame:
    """The tiny model's texts and the bundled collection (when the pipeline has run), with ids."""
    texts = [*tiny_model.SPAM, *tiny_model.HAM]
    if BUNDLED.is_file():
        texts += [ln.split("\t", 1)[1] for ln in BUNDLED.read_text(encoding="utf-8").splitlines()]
    texts = (texts * copies)[: max(len(texts), 40) * copies]
    return pd.DataFrame({"id": [f"m{i:06d}" for i in range(len(texts))], "text": texts})


def write_parts(frame: pd.DataFrame, folder: Path, n: int, fmt: str = "parquet") -> Path:
    folder.mkdir(parents=True)
    for i in range(n):
        part = frame.iloc[i::n]
        if fmt == "parquet":
            part.to_parquet(folder / f"part-{i:03d}.parquet", index=False)
        else:
            part.to_csv(folder / f"part-{i:03d}.csv", index=False)
    return folder


def read_parts(folder: Path) -> pd.DataFrame:
    files = sorted(folder.glob("part-*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files]).sort_values("id").reset_index(drop=True)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model.make(tmp_path_factory.mktemp("model"))


def test_in_process_partitions_are_bit_identical_to_the_scorer(
    model_path: Path, tmp_path: Path
) -> None:
    frame = corpus()
    src = write_parts(frame, tmp_path / "in", 3)
    report = score_partitions([str(src)], str(tmp_path / "out"), model_path=model_path)
    out = read_parts(tmp_path / "out")
    expected = Scorer.load(model_path).scores(frame["text"].tolist())
    assert (report.rows, report.partitions, report.scheduler) == (len(frame), 3, "in-process")
    assert out["id"].tolist() == frame["id"].tolist()  # every row once, ids untouched
    assert out["text"].tolist() == frame["text"].tolist()
    assert (out["spam_score"].to_numpy() == expected).all()  # bit for bit
    assert out["is_spam"].tolist() == [bool(s >= tiny_model.THRESHOLD) for s in expected]
    assert report.spam == int(out["is_spam"].sum()) > 0
    # ... and to the streaming path of a single CSV file (which writes 6 decimals).
    frame.to_csv(tmp_path / "all.csv", index=False)
    score_file(tmp_path / "all.csv", tmp_path / "all.out.csv", scorer=Scorer.load(model_path))
    streamed = pd.read_csv(tmp_path / "all.out.csv", dtype={"spam_score": str})
    assert streamed["spam_score"].tolist() == [f"{s:.6f}" for s in out["spam_score"]]


def test_csv_glob_in_jsonl_out_at_an_operating_point(model_path: Path, tmp_path: Path) -> None:
    frame = corpus()
    write_parts(frame, tmp_path / "in", 2, fmt="csv")
    report = score_partitions(
        [str(tmp_path / "in" / "part-*.csv")],
        str(tmp_path / "out"),
        model_path=model_path,
        operating_point="strict",
        output_format="jsonl",
    )
    files = sorted((tmp_path / "out").glob("part-*.jsonl"))
    out = pd.concat([pd.read_json(f, lines=True, dtype=False) for f in files]).sort_values("id")
    assert len(files) == 2 and report.rows == len(frame) == len(out)
    assert report.operating_point == "strict" and report.threshold == tiny_model.STRICT
    assert out["is_spam"].tolist() == (out["spam_score"] >= tiny_model.STRICT).tolist()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda d: (d / "a.parquet").write_bytes(b""), "no column 'text'"),
        (lambda d: None, "no .parquet, .csv, .tsv or .jsonl files found"),
    ],
)
def test_bad_partition_inputs_are_one_line(
    model_path: Path, tmp_path: Path, setup, message
) -> None:
    src = tmp_path / "in"
    src.mkdir()
    if "column" in message:
        pd.DataFrame({"body": ["hi"]}).to_parquet(src / "a.parquet")
    else:
        setup(src)
    with pytest.raises(UserError, match=message):
        score_partitions([str(src)], str(tmp_path / "out"), model_path=model_path)
    assert not (tmp_path / "out").exists()


def test_mixed_formats_and_rows_without_text_are_refused(model_path: Path, tmp_path: Path) -> None:
    src = write_parts(corpus(), tmp_path / "in", 2)
    pd.DataFrame({"id": ["x"], "text": ["hi"]}).to_csv(src / "extra.csv", index=False)
    with pytest.raises(UserError, match=r"the inputs mix formats \(csv, parquet\)"):
        score_partitions([str(src)], str(tmp_path / "out"), model_path=model_path)
    (src / "extra.csv").unlink()
    pd.DataFrame({"id": ["y", "z"], "text": ["ok", " "]}).to_parquet(src / "part-009.parquet")
    with pytest.raises(UserError, match=r"1 row\(s\) without text in 'text' \(first: row 2"):
        score_partitions([str(src)], str(tmp_path / "out"), model_path=model_path)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.tmp-*"))


# ------------------------------------------------------------------ a real cluster


@pytest.mark.slow  # a real Dask cluster, a worker killed
def test_a_real_cluster_scores_bit_identically_and_survives_a_killed_worker(
    cluster: tuple[str, list[subprocess.Popen[bytes]]],  # noqa: F811 (the fixture)
    model_path: Path,
    tmp_path: Path,
) -> None:
    address, procs = cluster
    frame = corpus(copies=12)
    src = write_parts(frame, tmp_path / "in", 48)
    expected = Scorer.load(model_path).scores(frame["text"].tolist())
    e = env()
    e["PYTHONPATH"] = str(ROOT / "src")
    run = subprocess.Popen(
        [
            sys.executable, "-m", "sentinelle", "score", str(src), "-o", str(tmp_path / "out"),
            "--model", str(model_path), "--scheduler", address,
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    written: list[Path] = []
    while time.monotonic() < deadline and run.poll() is None:
        written = list(tmp_path.glob(".out.tmp-*/part-*.parquet"))
        if len(written) >= 4:
            break
        time.sleep(0.02)
    assert run.poll() is None and 4 <= len(written) < 48, "the run ended before a worker died"
    procs[1].send_signal(signal.SIGKILL)  # worker w0, mid-run
    _, err = run.communicate(timeout=600)
    assert run.returncode == 0, err.decode()
    out = read_parts(tmp_path / "out")
    assert len(out) == len(frame) and out["id"].is_unique  # every row exactly once
    assert out["id"].tolist() == frame["id"].sort_values().tolist()
    by_id = frame.assign(expected=expected).sort_values("id")
    assert (out["spam_score"].to_numpy() == by_id["expected"].to_numpy()).all()
    assert f"on scheduler {address} with 2 workers" in err.decode()


def test_s3_partitions_in_and_out(
    model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Partitions in a real (moto) S3 server, read and written through s3fs."""
    import fsspec
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
            monkeypatch.delenv(key, raising=False)
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{host}:{port}")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
        fs = fsspec.filesystem("s3", skip_instance_cache=True)
        fs.mkdir("sms")
        frame = corpus()
        for i in range(2):
            with fs.open(f"sms/in/day=1/part-{i}.parquet", "wb") as fh:
                frame.iloc[i::2].to_parquet(fh, index=False)
        fsspec.filesystem("s3").invalidate_cache()
        report = score_partitions(["s3://sms/in/"], "s3://sms/out", model_path=model_path)
        assert (report.rows, report.partitions) == (len(frame), 2)
        names = sorted(fs.ls("sms/out", refresh=True))
        assert names == ["sms/out/part-00000.parquet", "sms/out/part-00001.parquet"]
        out = pd.concat([pd.read_parquet(fs.open(n, "rb")) for n in names]).sort_values("id")
        expected = Scorer.load(model_path).scores(out["text"].tolist())
        assert out["id"].tolist() == sorted(frame["id"]) and (out["spam_score"] == expected).all()
    finally:
        server.stop()
