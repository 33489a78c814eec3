"""Atomic writes and reproducible zips."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from sentinelle import io


def test_atomic_path_replaces_only_on_success(tmp_path: Path) -> None:
    dest = tmp_path / "out" / "file.txt"
    io.write_text(dest, "first\n")
    with pytest.raises(RuntimeError), io.atomic_path(dest) as tmp:
        tmp.write_text("half-writ")
        raise RuntimeError("killed")
    assert dest.read_text() == "first\n"
    assert [p.name for p in dest.parent.iterdir()] == ["file.txt"]  # no temp file left


def test_json_is_canonical_and_strict(tmp_path: Path) -> None:
    io.write_json(tmp_path / "a.json", {"b": 1, "a": [1.5, "é"]})
    assert (tmp_path / "a.json").read_text(
        encoding="utf-8"
    ) == '{\n  "a": [\n    1.5,\n    "é"\n  ],\n  "b": 1\n}\n'
    with pytest.raises(ValueError):
        io.dumps_json({"x": float("inf")})


def test_normalise_zip_makes_bytes_independent_of_time_and_order(tmp_path: Path) -> None:
    def make(path: Path, stamp: tuple, order: list[str]) -> None:
        with zipfile.ZipFile(path, "w") as z:
            for name in order:
                z.writestr(zipfile.ZipInfo(name, date_time=stamp), f"data of {name}")
        io.normalise_zip(path)

    make(tmp_path / "a.zip", (2020, 5, 1, 12, 0, 0), ["x.txt", "y.txt"])
    make(tmp_path / "b.zip", (2024, 1, 2, 3, 4, 6), ["y.txt", "x.txt"])
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    with zipfile.ZipFile(tmp_path / "a.zip") as z:
        assert z.read("y.txt") == b"data of y.txt"


def test_table_round_trip_is_byte_reproducible(tmp_path: Path) -> None:
    import pandas as pd

    frame = pd.DataFrame({"text": ["a", "b"], "label": ["ham", "spam"]})
    io.write_table(tmp_path / "1.parquet", frame)
    io.write_table(tmp_path / "2.parquet", frame)
    assert io.sha256_file(tmp_path / "1.parquet") == io.sha256_file(tmp_path / "2.parquet")
    pd.testing.assert_frame_equal(io.read_table(tmp_path / "1.parquet"), frame)


def test_a_large_table_is_written_as_parts_and_read_back_whole(tmp_path: Path) -> None:
    import pandas as pd

    frame = pd.DataFrame({"text": [f"message {i}" for i in range(25)], "label": ["ham"] * 25})
    dest = tmp_path / "train.parquet"
    io.write_table(dest, frame.iloc[:5], part_rows=10)  # small: one file
    assert dest.is_file()
    single_sha = io.sha256_table(dest)
    io.write_table(dest, frame, part_rows=10)  # the file makes way for a folder of parts
    assert sorted(p.name for p in dest.iterdir()) == [
        "part-00000.parquet",
        "part-00001.parquet",
        "part-00002.parquet",
    ]
    assert io.read_table(dest).equals(frame)
    assert io.table_rows(io.table_parts(dest)) == 25
    assert len(io.read_table(dest / "part-00002.parquet")) == 5
    parts_sha = io.sha256_table(dest)
    io.write_table(dest, frame, part_rows=10)
    assert io.sha256_table(dest) == parts_sha != single_sha  # byte-reproducible
    io.write_table(dest, frame.iloc[:5], part_rows=10)  # and back to one file
    assert dest.is_file() and io.sha256_table(dest) == single_sha
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.parquet"]  # no leftovers


def test_a_failed_partitioned_write_leaves_the_previous_table(tmp_path: Path) -> None:
    import pandas as pd

    frame = pd.DataFrame({"text": ["a", "b", "c"]})
    dest = tmp_path / "t.parquet"
    io.write_table(dest, frame, part_rows=1000)

    def parts():
        yield frame
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError, match="killed mid-write"):
        io.write_parts(dest, parts())
    assert dest.is_file() and io.read_table(dest).equals(frame)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.parquet"]


def test_outputs_move_in_together_or_not_at_all(tmp_path: Path) -> None:
    a, b = tmp_path / "models" / "a.bin", tmp_path / "b" / "c.json"
    io.write_text(a, "old a\n")
    io.write_text(b, "old b\n")
    with pytest.raises(KeyboardInterrupt), io.outputs() as out:
        out.write_text(a, "new a\n")
        out.write_text(b, "half")
        raise KeyboardInterrupt  # Ctrl-C before the end: nothing moves, nothing is left
    assert (a.read_text(), b.read_text()) == ("old a\n", "old b\n")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.bin", "b", "c.json", "models"]

    with io.outputs() as out:
        out.write_text(a, "new a\n")
        live = out.folder(tmp_path / "live")  # a folder a library writes itself (DVCLive)
        (live / "plots").mkdir()
        (live / "plots" / "p.json").write_text("{}\n")
        assert not (tmp_path / "live").exists()  # nothing in place before the end
    assert a.read_text() == "new a\n"
    assert (tmp_path / "live" / "plots" / "p.json").read_text() == "{}\n"
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_outputs_remove_what_a_killed_run_left_and_swap_files_and_folders(
    tmp_path: Path,
) -> None:
    import pandas as pd

    dest = tmp_path / "train.parquet"
    left = io.temp_name(dest)  # as a SIGKILLed run leaves it
    left.write_text("half")
    frame = pd.DataFrame({"text": [f"m{i}" for i in range(5)], "label": ["ham"] * 5})
    with io.outputs() as out:
        io.write_table(out.path(dest), frame, part_rows=2)  # a folder of parts
    assert not left.exists()
    assert [p.name for p in io.table_parts(dest)] == [f"part-0000{i}.parquet" for i in range(3)]
    with io.outputs() as out:
        io.write_table(out.path(dest), frame)  # a file again
    assert dest.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.parquet"]


def test_a_staged_output_never_written_fails_and_moves_nothing(tmp_path: Path) -> None:
    a = tmp_path / "a.json"
    io.write_text(a, "old\n")
    with pytest.raises(FileNotFoundError, match="never written"), io.outputs() as out:
        out.write_text(a, "new\n")
        out.path(tmp_path / "b.json")
    assert a.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_sigint_during_the_moves_waits_for_the_last_one(monkeypatch: pytest.MonkeyPatch) -> None:
    import signal

    # Python's own Ctrl-C handler, whatever an earlier test in this process installed.
    monkeypatch.setattr(io, "_stopped", [])
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    moved = []
    with pytest.raises(KeyboardInterrupt), io._signals_held():
        signal.raise_signal(signal.SIGINT)  # Ctrl-C between two moves
        moved.append("the rest")
    signal.signal(signal.SIGINT, previous)
    assert moved == ["the rest"]


def test_a_signal_whose_exception_was_lost_still_stops_the_moves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import signal

    # As when the SystemExit of a SIGTERM is raised in an at-fork hook, where Python ignores it.
    monkeypatch.setattr(io, "_stopped", [signal.SIGTERM])
    a = tmp_path / "a.json"
    io.write_text(a, "old\n")
    with pytest.raises(SystemExit, match="143"), io.outputs() as out:
        out.write_text(a, "new\n")
    assert a.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
