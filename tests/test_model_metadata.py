"""Tampered model files and metadata: `sentinelle score` says what is wrong in one line (exit 2,
no traceback), and `sentinelle serve` stays up, unready, with the reason in /readyz."""

from __future__ import annotations

import json
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

import tiny_model
from cli_helper import sentinelle
from sentinelle import io
from sentinelle.errors import UserError
from sentinelle.modeling import metadata, persistence
from test_api import serve, stop, wait_for

RESTORE = "restore the model's files with `dvc pull`, or retrain with `dvc repro`"


def edit(change: Callable[[dict], None]) -> Callable[[Path], None]:
    """A tampering that edits model.json's object in place."""

    def tamper(model: Path) -> None:
        meta = io.read_json(model.with_suffix(".json"))
        change(meta)
        model.with_suffix(".json").write_text(json.dumps(meta))

    return tamper


def write_meta(text: str) -> Callable[[Path], None]:
    def tamper(model: Path) -> None:
        model.with_suffix(".json").write_text(text)

    return tamper


def rehash(model: Path) -> None:
    """model.json records the model file as it now is (what an attacker with both files does)."""
    edit(lambda meta: meta.update(model_sha256=io.sha256_file(model)))(model)


def corrupt_zip(model: Path) -> None:
    data = bytearray(model.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = b"\x00" * 64
    model.write_bytes(bytes(data))
    rehash(model)


def huge_schema(model: Path) -> None:
    """A skops file whose schema.json unpacks to just over the limit (160 MiB: it compresses
    to about 160 KB)."""
    with zipfile.ZipFile(model) as archive:
        entries = {info.filename: archive.read(info) for info in archive.infolist()}
    pad = persistence.MAX_SCHEMA_BYTES + 1 - len(entries["schema.json"])
    entries["schema.json"] = entries["schema.json"] + b" " * pad
    with zipfile.ZipFile(model, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    rehash(model)


def huge_meta(model: Path) -> None:
    """A 300 MB model.json (sparse: a valid start, then NUL bytes), never parsed."""
    path = model.with_suffix(".json")
    with path.open("r+b") as fh:
        fh.truncate(300 << 20)


def not_a_model(model: Path) -> None:
    """A skops file of allowlisted types only (a dict), re-hashed: not a classifier."""
    persistence.skops_io().dump({"threshold": 0.5}, model)
    rehash(model)


def set_point(meta: dict) -> None:
    meta["operating_points"]["strict"]["threshold"] = 1.5


@dataclass(frozen=True)
class Tampered:
    id: str
    tamper: Callable[[Path], None]
    line: str  # what the one error line says after "<file>: "
    file: str = "model.json"
    then: str = ""  # what it says further on


CASES = [
    Tampered(
        "not-json",
        write_meta("{model_version: 1"),
        "model metadata is not valid JSON (Expecting property name enclosed in double quotes "
        f"at line 1, column 2); {RESTORE}",
    ),
    Tampered(
        "not-an-object",
        write_meta("[0.5]"),
        f"model metadata must be a JSON object, got [0.5]; {RESTORE}",
    ),
    Tampered(
        "missing-threshold",
        edit(lambda m: m.pop("threshold")),
        f"missing key 'threshold' (a number >= 0 and <= 1); {RESTORE}",
    ),
    Tampered(
        "threshold-a-string",
        edit(lambda m: m.update(threshold="high")),
        f'threshold = "high" is invalid: must be a number >= 0 and <= 1; {RESTORE}',
    ),
    Tampered(
        "threshold-2",
        edit(lambda m: m.update(threshold=2.0)),
        f"threshold = 2.0 is invalid: must be a number >= 0 and <= 1; {RESTORE}",
    ),
    Tampered(
        "threshold-negative",
        edit(lambda m: m.update(threshold=-0.1)),
        f"threshold = -0.1 is invalid: must be a number >= 0 and <= 1; {RESTORE}",
    ),
    Tampered(
        "operating-point-outside",
        edit(set_point),
        "operating_points.strict.threshold = 1.5 is invalid: must be a number >= 0 and <= 1; "
        f"{RESTORE}",
    ),
    Tampered(
        "operating-points-a-list",
        edit(lambda m: m.update(operating_points=[0.5])),
        "operating_points = [0.5] is invalid: must be a JSON object of name -> "
        f"{{threshold, ...}}; {RESTORE}",
    ),
    Tampered(
        "missing-sha256",
        edit(lambda m: m.pop("model_sha256")),
        f"missing key 'model_sha256' (a string 64 lower-case hex digits); {RESTORE}",
    ),
    Tampered(
        "sha256-not-hex",
        edit(lambda m: m.update(model_sha256="x" * 300)),
        f'model_sha256 = "{"x" * 59}… (302 characters) is invalid: must be a string 64 '
        f"lower-case hex digits; {RESTORE}",
    ),
    Tampered(
        "unknown-preprocess-key",
        edit(lambda m: m["params"]["preprocess"].update(lowercase=True)),
        "unknown key 'params.preprocess.lowercase'; allowed: placeholders, stem, "
        f"remove_stopwords; {RESTORE}",
    ),
    Tampered(
        "preprocess-wrong-type",
        edit(lambda m: m["params"]["preprocess"].update(stem="yes")),
        f'params.preprocess.stem = "yes" is invalid: must be true/false; {RESTORE}',
    ),
    Tampered(
        "huge-metadata",
        huge_meta,
        f"model metadata over {metadata.MAX_BYTES} bytes (train writes about 2 KB), not read; "
        f"{RESTORE}",
    ),
    Tampered(
        "wrong-sha256",
        edit(lambda m: m.update(model_sha256="0" * 64)),
        "SHA-256 ",
        file="model.skops",
        then="does not match the recorded 000000000000…; refusing to load a model that is not "
        "the one trained",
    ),
    Tampered(
        "rehashed-corrupt-zip",
        corrupt_zip,
        "not a readable skops model file (",
        file="model.skops",
        then=RESTORE,
    ),
    Tampered(
        "rehashed-huge-schema",
        huge_schema,
        f"not a readable skops model file: its schema.json is {persistence.MAX_SCHEMA_BYTES + 1} "
        f"bytes, over the {persistence.MAX_SCHEMA_BYTES}-byte limit; {RESTORE}",
        file="model.skops",
    ),
    Tampered(
        "rehashed-not-a-classifier",
        not_a_model,
        "not a Sentinelle model: a fitted classifier of the classes ham and spam is expected, "
        "found dict with classes []",
        file="model.skops",
    ),
]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model.make(tmp_path_factory.mktemp("pristine"))


def tampered(case: Tampered, pristine: Path, dest: Path) -> Path:
    model = dest / "model.skops"
    model.write_bytes(pristine.read_bytes())
    model.with_suffix(".json").write_bytes(pristine.with_suffix(".json").read_bytes())
    case.tamper(model)
    return model


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_score_says_what_is_wrong_in_one_line(
    case: Tampered, pristine: Path, tmp_path: Path
) -> None:
    model = tampered(case, pristine, tmp_path)
    (tmp_path / "in.txt").write_text("WIN a FREE prize now\nsee you at lunch\n")
    proc = sentinelle("score", "in.txt", "--model", model, cwd=tmp_path, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith(f"sentinelle score: error: {tmp_path / case.file}: {case.line}"), line
    assert case.then in line
    assert len(line) < 400


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_the_loader_raises_one_user_error(case: Tampered, pristine: Path, tmp_path: Path) -> None:
    """The same through the library (what evaluate and the server call)."""
    model = tampered(case, pristine, tmp_path)
    with pytest.raises(UserError) as info:
        persistence.load_with_metadata(model, model.with_suffix(".json"))
    assert str(info.value).startswith(f"{tmp_path / case.file}: {case.line}"), str(info.value)
    assert case.then in str(info.value)


def test_the_pristine_model_loads(pristine: Path) -> None:
    model, meta = persistence.load_with_metadata(pristine, pristine.with_suffix(".json"))
    assert list(model.classes_) == ["ham", "spam"] and meta["threshold"] == tiny_model.THRESHOLD


SERVED = ["not-json", "threshold-2", "missing-sha256", "huge-metadata", "rehashed-corrupt-zip"]


@pytest.mark.parametrize("case", [c for c in CASES if c.id in SERVED], ids=SERVED)
def test_serve_stays_up_unready_with_the_reason(
    case: Tampered, pristine: Path, tmp_path: Path
) -> None:
    model = tampered(case, pristine, tmp_path)
    log = tmp_path / "server.log"
    proc, url = serve(model, log)
    try:
        assert wait_for(f"{url}/healthz", proc, log, 200).json()["status"] == "ok"
        ready = wait_for(f"{url}/readyz", proc, log, 503)
        for _ in range(600):  # the model loads in the background: until it has failed
            if ready.json()["status"] != "loading":
                break
            time.sleep(0.1)
            ready = httpx.get(f"{url}/readyz")
        assert ready.status_code == 503
        body = ready.json()
        assert body["status"] == "error" and body["model_version"] is None
        assert body["detail"].startswith(f"{tmp_path / case.file}: {case.line}"), body
        assert case.then in body["detail"]
        assert httpx.post(f"{url}/predict", json={"text": "hi"}).status_code == 503
    finally:
        stop(proc)
    assert "Traceback" not in log.read_text()
