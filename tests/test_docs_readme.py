"""The README runs as written: its shell blocks, in order, on a fresh copy of the repository.

Slow (the pipeline, the experiments and feedback journeys, the S3 server): `python3 dev.py test`
leaves it out; CI runs it (SENTINELLE_FULL_TESTS=1), and naming this file runs it. The copy uses
this interpreter's virtual environment as its `.venv` (installing one is `dev.py reproduce`'s
check) and sees `../shared` beside it as a clone beside this repository would (a stand-in where
it is absent, as in CI).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from helpers import ROOT, SHARED, env, make_project, sh
from sentinelle.data import sources
from sentinelle_tools import readme

# What the README does not run here, and why (its `readme-runner` comments say the same).
NOT_RUN = {
    "Quick start": 'not "python3 dev.py test"',
    "From a pull request to a running service": 'not "python3 dev.py image"',
    "Batch scoring": "skipped",
    "Preparing training data at scale": "skipped",
}


def _state(block: readme.Block) -> str:
    if block.skip:
        return "skipped"
    return f'not "{block.skip_prefix}"' if block.skip_prefix else "runs"


def test_the_readme_lists_what_it_does_not_run_with_a_reason() -> None:
    found = readme.blocks(ROOT / "README.md")
    assert {b.heading: _state(b) for b in found if _state(b) != "runs"} == NOT_RUN
    reasons = [b.skip or b.skip_lines_reason for b in found if _state(b) != "runs"]
    assert all(reason and len(reason.split()) >= 5 for reason in reasons), reasons
    headings = [b.heading for b in found]
    assert "Experiments" in headings and "The model in production" in headings


def _clean(repo: Path) -> None:
    """The workspace is the last commit: git and DVC both say nothing changed."""
    assert sh("git", "status", "--porcelain", "--untracked-files=no", cwd=repo).stdout == ""
    assert json.loads(sh("dvc", "status", "--json", cwd=repo).stdout or "{}") == {}


def _shared_beside(folder: Path) -> None:
    """``../shared`` beside the copy, as beside a clone: the real one, or, where it is absent
    (CI), a stand-in whose full collection is the bundled subset (4,862 of its 5,574
    messages, the same format), so that every block still runs as written."""
    if SHARED.is_dir():
        (folder / "shared").symlink_to(SHARED.parent)
        return
    stand_in = folder / "shared" / "datasets"
    stand_in.mkdir(parents=True)
    (stand_in / "sms_spam_collection.tsv").write_bytes(sources.bundled_bytes())


@pytest.mark.slow
@pytest.mark.e2e
def test_the_readme_runs_as_written(tmp_path: Path) -> None:
    clone = make_project(tmp_path / "sentinelle")
    _shared_beside(tmp_path)
    (clone / ".venv").symlink_to(Path(sys.prefix))
    e = env()
    e["PATH"] = f"{clone / '.venv' / 'bin'}{os.pathsep}{e['PATH']}"  # `source .venv/bin/activate`
    e["VIRTUAL_ENV"] = str(clone / ".venv")
    e.pop("PYTHONPATH", None)
    ran = []
    for block in readme.blocks(clone / "README.md"):
        if block.skip:
            continue
        start = time.monotonic()
        try:
            readme.run_block(block, clone, e)
        except readme.BlockFailed as failed:
            tail = "\n".join(failed.output.splitlines()[-60:])
            pytest.fail(f"{failed}\n--- the block's output (last 60 lines)\n{tail}")
        ran.append(block.heading)
        print(f"{block.where}: {time.monotonic() - start:.0f} s")  # shown by -s / -rP
        if block.heading == "Experiments":
            # the documented way back: the committed baseline, and the plan's runs kept
            _clean(clone)
            names = sh("dvc", "exp", "list", "--name-only", cwd=clone).stdout.split()
            assert {"model-zoo-published-rf", "model-zoo-logreg"} <= set(names), names
    assert ran == [
        "Quick start",
        "The published Sentinelle setup as a params choice",
        "Experiments",
        "Sharing data and models through S3",
        "Using the model: scoring, serving, registry",
        "The model in production",
        "From a pull request to a running service",
    ]
    # The feedback journey ends committed and pushed: the teammate's clone is up to date.
    teammate = tmp_path / "teammate"
    _clean(teammate)
    _clean(clone)
    assert "feedback: feedback/feedback.jsonl" in (clone / "params.yaml").read_text()
    for out in ("models/model.skops", "data/raw/train.parquet"):
        assert (teammate / out).read_bytes() == (clone / out).read_bytes()


SAMPLE = """# Title

```bash
echo one
```

## Second

<!-- readme-runner: skip-lines "python3 dev.py test" it is the suite itself -->
```sh
echo two
python3 dev.py test
false
echo never
```

<!-- readme-runner: skip needs a cluster of your own -->
```bash
exit 3
```

```console
$ not run
```
"""


def test_blocks_their_headings_and_directives(tmp_path: Path) -> None:
    md = tmp_path / "README.md"
    md.write_text(SAMPLE)
    found = readme.blocks(md)
    assert [(b.line, b.heading, _state(b)) for b in found] == [
        (3, "Title", "runs"),
        (10, "Second", 'not "python3 dev.py test"'),
        (18, "Second", "skipped"),
    ]
    assert found[1].script().splitlines()[1] == "# python3 dev.py test"
    assert readme.run_block(found[0], tmp_path, env()) == "one\n"


def test_a_failing_block_names_its_line_in_the_markdown(tmp_path: Path) -> None:
    md = tmp_path / "README.md"
    md.write_text(SAMPLE)
    with pytest.raises(readme.BlockFailed) as failed:
        readme.run_block(readme.blocks(md)[1], tmp_path, env())
    assert str(failed.value) == "README.md:10 (Second): exit code 1 at README.md:13: false"
    assert "two" in failed.value.output and "never" not in failed.value.output


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<!-- readme-runner: skip why -->\ntext\n```bash\necho\n```\n", "not followed by a fence"),
        ("<!-- readme-runner: skip why -->\n```console\n$ x\n```\n", "before a non-shell block"),
        (
            "<!-- readme-runner: skip-lines x y -->\n```bash\nx\n```\n",
            'expected skip-lines "PREFIX"',
        ),
        ("```bash\necho\n", "a code fence that is never closed"),
    ],
)
def test_a_misplaced_directive_is_one_line(tmp_path: Path, text: str, message: str) -> None:
    md = tmp_path / "README.md"
    md.write_text(text)
    with pytest.raises(ValueError, match=message):
        readme.blocks(md)
