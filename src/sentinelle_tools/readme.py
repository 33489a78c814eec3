"""Run a markdown file's shell blocks in order, as a reader would type them: the README as a test.

    PYTHONPATH=src python -m sentinelle_tools.readme list README.md   # blocks, and what is skipped
    PYTHONPATH=src python -m sentinelle_tools.readme run README.md    # run them here (a clone!)

A block is a fence opened with ```bash or ```sh. Each runs in its own ``bash`` with ``set -euo
pipefail`` from the directory given (the clone's root, where the README's commands start), in a
process group of its own that is ended when the block is done, so a server it left in the
background does not outlive it. A block that fails names its line in the markdown file.

A comment on the line just before a fence changes what runs, with the reason a reader sees:

    <!-- readme-runner: skip REASON -->                    the block is not run
    <!-- readme-runner: skip-lines "PREFIX" REASON -->     its lines starting with PREFIX are not

Why not a library: mktestdocs and pytest-markdown-docs (both on PyPI) run Python fences, or
each shell fence alone; the README's journeys need bash blocks run in order in one working
copy, a server started with ``&`` ended with its block's process group, a timeout per block,
and skips that carry their reason in the markdown. This module is those ~200 lines.

``tests/test_docs_readme.py`` runs the README on a fresh copy of the repository (slow: it runs
the pipeline and the experiments and feedback journeys).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("sentinelle_tools.readme")

FENCE = re.compile(r"^```(bash|sh)\s*$")
DIRECTIVE = re.compile(r"^<!--\s*readme-runner:\s*(skip-lines|skip)\s+(.*?)\s*-->\s*$")
SKIP_LINES = re.compile(r'^"([^"]+)"\s+(.+)$')
# Bash reports the line of the command that failed; the block is shown from that line.
TRAP = "trap 'echo \"readme-runner: line $LINENO failed: $BASH_COMMAND\" >&2' ERR\n"


@dataclass(frozen=True)
class Block:
    """One shell block: where it is, under which heading, its code and what is skipped."""

    path: Path
    line: int  # the opening fence's line (1-based); the code starts on the next one
    heading: str
    code: str
    skip: str | None = None  # the reason the whole block is not run
    skip_prefix: str | None = None  # lines starting with this are not run ...
    skip_lines_reason: str | None = None  # ... for this reason

    @property
    def where(self) -> str:
        return f"{self.path.name}:{self.line} ({self.heading})"

    def script(self) -> str:
        """The code to run: skipped lines commented out, so line numbers stay the markdown's."""
        lines = self.code.splitlines()
        if self.skip_prefix:
            lines = [f"# {x}" if x.lstrip().startswith(self.skip_prefix) else x for x in lines]
        return "\n".join(lines) + "\n"


class BlockFailed(Exception):
    """A block exited non-zero or ran out of time; the message is one line, the output kept."""

    def __init__(self, message: str, output: str) -> None:
        super().__init__(message)
        self.output = output


def blocks(path: Path) -> list[Block]:
    """The bash/sh blocks of a markdown file, in order, with their skip directives."""
    found: list[Block] = []
    heading = "top"
    directive: tuple[str, str] | None = None
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        text = lines[i]
        if text.startswith("#") and not text.startswith("#!"):
            heading = text.lstrip("#").strip()
        if match := DIRECTIVE.match(text):
            directive = (match.group(1), match.group(2))
            i += 1
            continue
        if text.startswith("```"):
            end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), None)
            if end is None:
                raise ValueError(f"{path}:{i + 1}: a code fence that is never closed")
            if FENCE.match(text):
                found.append(_block(path, i + 1, heading, "\n".join(lines[i + 1 : end]), directive))
            elif directive:
                raise ValueError(
                    f"{path}:{i + 1}: a readme-runner comment before a non-shell block"
                )
            directive = None
            i = end + 1
            continue
        if directive and text.strip():
            raise ValueError(f"{path}:{i + 1}: a readme-runner comment not followed by a fence")
        i += 1
    return found


def _block(path: Path, line: int, heading: str, code: str, directive: tuple[str, str] | None):
    if directive is None:
        return Block(path, line, heading, code)
    kind, rest = directive
    if kind == "skip":
        return Block(path, line, heading, code, skip=rest)
    match = SKIP_LINES.match(rest)
    if not match:
        raise ValueError(f'{path}:{line - 1}: expected skip-lines "PREFIX" REASON, got {rest!r}')
    return Block(path, line, heading, code, skip_prefix=match[1], skip_lines_reason=match[2])


def _end_group(proc: subprocess.Popen[str]) -> None:
    """Stop whatever the block left running in its process group (TERM, then KILL)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        if sig == signal.SIGTERM:
            time.sleep(1)


def run_block(block: Block, cwd: Path, env: dict[str, str], timeout: float = 900) -> str:
    """Run one block in ``cwd``; returns its output (stdout and stderr), raises BlockFailed."""
    proc = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", TRAP + block.script()],
        cwd=cwd,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _end_group(proc)
        output, _ = proc.communicate()
        raise BlockFailed(f"{block.where}: still running after {timeout:.0f} s", output) from None
    finally:
        _end_group(proc)
    if proc.returncode != 0:
        failed = re.findall(r"readme-runner: line (\d+) failed: (.*)", output)
        at = (
            f" at {block.path.name}:{block.line + int(failed[-1][0]) - 1}: {failed[-1][1]}"
            if failed
            else ""
        )
        raise BlockFailed(f"{block.where}: exit code {proc.returncode}{at}", output)
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sentinelle_tools.readme", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("command", choices=["list", "run"])
    parser.add_argument("markdown", type=Path, nargs="?", default=Path("README.md"))
    parser.add_argument("--timeout", type=float, default=900, help="seconds per block")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="readme: %(message)s")
    try:
        found = blocks(args.markdown)
    except (OSError, ValueError) as e:
        print(f"readme: error: {e}", file=sys.stderr)
        return 2
    for block in found:
        if args.command == "list" or block.skip:
            state = f"skipped: {block.skip}" if block.skip else "runs"
            if block.skip_prefix:
                state += f' (not "{block.skip_prefix}…": {block.skip_lines_reason})'
            print(f"{block.where}: {state}")
            continue
        log.info("%s: running", block.where)
        start = time.monotonic()
        try:
            output = run_block(block, Path.cwd(), dict(os.environ), args.timeout)
        except BlockFailed as e:
            print(e.output, end="")
            print(f"readme: error: {e}", file=sys.stderr)
            return 1
        print(output, end="")
        log.info("%s: ok in %.0f s", block.where, time.monotonic() - start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
