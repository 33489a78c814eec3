"""Remote sources against real local servers: http.server and a moto S3 server on 127.0.0.1."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.server
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
import yaml

from helpers import make_project, sh
from ingest_support import messages, output_hashes, run_in_process, uci
from sentinelle.errors import UserError

DATA = uci(messages(30, 10)).encode()
SLOW_SECONDS = 2.0


class _Handler(http.server.BaseHTTPRequestHandler):
    files: ClassVar[dict[str, bytes]] = {}
    hits: ClassVar[Counter[str]] = Counter()

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        self.hits[path] += 1
        if path == "/slow.tsv":
            time.sleep(SLOW_SECONDS)
        if path == "/flaky.tsv" and self.hits[path] == 1:
            self.send_error(503, "try again")
            return
        body = self.files.get(path.replace("/slow", "/data").replace("/flaky", "/data"))
        if body is None:
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def http_url() -> Iterator[str]:
    _Handler.files = {"/data.tsv": DATA, "/data.tsv.gz": gzip.compress(DATA, mtime=0)}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_http_200(http_url: str, workdir: Path) -> None:
    report = run_in_process(
        workdir, f"{http_url}/data.tsv", sha256=hashlib.sha256(DATA).hexdigest()
    )
    assert report["sha256"] == hashlib.sha256(DATA).hexdigest()
    assert (report["format"], report["rows"], report["bytes"]) == ("uci", 40, len(DATA))


def test_http_gzip_with_query_string(http_url: str, workdir: Path) -> None:
    report = run_in_process(workdir, f"{http_url}/data.tsv.gz?download=1")
    assert (report["compression"], report["format"], report["rows"]) == ("gzip", "uci", 40)


def test_http_404_is_one_line(http_url: str, workdir: Path) -> None:
    with pytest.raises(
        UserError,
        match=r"^http://127\.0\.0\.1:\d+/missing\.tsv: HTTP 404 Not Found; "
        "ingest.source must be a URL that answers 200 with the data file$",
    ):
        run_in_process(workdir, f"{http_url}/missing.tsv")


def test_http_timeout_is_retried_then_reported(http_url: str, workdir: Path) -> None:
    _Handler.hits["/slow.tsv"] = 0
    with pytest.raises(
        UserError,
        match=r"/slow\.tsv: no answer within ingest\.timeout = 0\.5 s "
        r"\(after 2 attempt\(s\); see ingest\.timeout and ingest\.retries\)$",
    ):
        run_in_process(workdir, f"{http_url}/slow.tsv", timeout=0.5, retries=1)
    assert _Handler.hits["/slow.tsv"] == 2


def test_http_server_error_is_retried(http_url: str, workdir: Path) -> None:
    _Handler.hits["/flaky.tsv"] = 0
    report = run_in_process(workdir, f"{http_url}/flaky.tsv", retries=1)
    assert report["rows"] == 40
    assert _Handler.hits["/flaky.tsv"] == 2


def test_http_sha256_mismatch_names_both_hashes_and_keeps_outputs(
    http_url: str, workdir: Path
) -> None:
    run_in_process(workdir, f"{http_url}/data.tsv")
    before = output_hashes(workdir)
    pinned = "ab" * 32
    with pytest.raises(UserError) as info:
        run_in_process(workdir, f"{http_url}/data.tsv", sha256=pinned)
    assert str(info.value).endswith(
        f"/data.tsv: sha256 is {hashlib.sha256(DATA).hexdigest()}, "
        f"but ingest.sha256 pins {pinned}; "
        "the content changed: check the source, then update or clear ingest.sha256"
    )
    assert output_hashes(workdir) == before


def test_unsupported_scheme(workdir: Path) -> None:
    with pytest.raises(UserError, match="unsupported scheme 'ftp://'; allowed: a local path"):
        run_in_process(workdir, "ftp://example.invalid/data.tsv")


# ------------------------------------------------------------------------------ S3

BUCKET = "sentinelle-data"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake credentials in the environment, and no user AWS config or profile."""
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


def put(endpoint: str, key: str, body: bytes) -> None:
    import botocore.session

    client = botocore.session.get_session().create_client("s3", endpoint_url=endpoint)
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=BUCKET)
    client.put_object(Bucket=BUCKET, Key=key, Body=body)


def test_s3_with_endpoint_param(s3_endpoint: str, aws_env: None, workdir: Path) -> None:
    put(s3_endpoint, "in/sms.tsv", DATA)
    report = run_in_process(workdir, f"s3://{BUCKET}/in/sms.tsv", endpoint_url=s3_endpoint)
    assert (report["sha256"], report["rows"]) == (hashlib.sha256(DATA).hexdigest(), 40)


def test_s3_gzip_with_endpoint_from_environment(
    s3_endpoint: str, aws_env: None, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(s3_endpoint, "in/sms.tsv.gz", gzip.compress(DATA, mtime=0))
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    report = run_in_process(workdir, f"s3://{BUCKET}/in/sms.tsv.gz")
    assert (report["compression"], report["rows"]) == ("gzip", 40)


def test_s3_missing_key_is_one_line(s3_endpoint: str, aws_env: None, workdir: Path) -> None:
    put(s3_endpoint, "in/sms.tsv", DATA)
    with pytest.raises(
        UserError,
        match=rf"^s3://{BUCKET}/in/nope\.tsv: S3 error NoSuchKey \(HTTP 404\); "
        "ingest.source must name an object you can read$",
    ):
        run_in_process(workdir, f"s3://{BUCKET}/in/nope.tsv", endpoint_url=s3_endpoint)


def test_s3_url_without_key(workdir: Path) -> None:
    with pytest.raises(
        UserError, match=r"ingest.source = 's3://bucket-only': expected s3://bucket/key"
    ):
        run_in_process(workdir, "s3://bucket-only")


@pytest.mark.e2e
@pytest.mark.slow  # an S3 server and two dvc repro
def test_dvc_reruns_ingest_when_the_s3_object_changes(
    s3_endpoint: str, aws_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DVC tracks an s3:// source as an external dependency (ETag in dvc.lock).

    DVC and the stage find the endpoint the same way when it is given as
    AWS_ENDPOINT_URL (ingest.endpoint_url is seen by the stage only).
    """
    put(s3_endpoint, "dvc/sms.tsv", DATA)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    repo = make_project(tmp_path / "repo")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["ingest"]["source"] = f"s3://{BUCKET}/dvc/sms.tsv"
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh("dvc", "repro", "ingest", cwd=repo)
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    [dep] = [d for d in lock["stages"]["ingest"]["deps"] if d["path"].startswith("s3://")]
    assert dep["etag"] == hashlib.md5(DATA).hexdigest() and dep["size"] == len(DATA)
    assert "Data and pipelines are up to date." in sh("dvc", "status", "ingest", cwd=repo).stdout

    put(
        s3_endpoint,
        "dvc/sms.tsv",
        DATA + uci([("spam", "one more message to win a prize")]).encode(),
    )
    assert (
        f"modified:           s3://{BUCKET}/dvc/sms.tsv"
        in sh("dvc", "status", "ingest", cwd=repo).stdout
    )
    assert "Running stage 'ingest'" in sh("dvc", "repro", "ingest", cwd=repo).stdout
    report = yaml.safe_load((repo / "data/report.json").read_text())
    assert report["rows_read"] == 41
