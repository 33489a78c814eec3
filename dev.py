#!/usr/bin/env python3
"""One-command set-up and run for Sentinelle (standard library only).

    python3 dev.py pipeline   # create .venv, install pinned requirements, run `dvc repro`
    python3 dev.py test       # create .venv, install pinned dev requirements, run pytest
                              # (tests marked slow only with SENTINELLE_FULL_TESTS=1, as CI)
    python3 dev.py lint       # (dev venv) ruff check, ruff format --check, lint-imports
    python3 dev.py setup      # only create/update .venv
    python3 dev.py reproduce  # on each other supported Python found here (or: reproduce 3.12 3.13):
                              # a fresh clone of HEAD, `dev.py pipeline`, `git diff --exit-code
                              # dvc.lock dvclive/`
    python3 dev.py s3 start   # (dev venv) start the local S3 server, configure the DVC remote;
                              # also: s3 stop | s3 status | s3 configure --state-dir DIR
    python3 dev.py image      # build the service's container image (docker, podman or buildah;
                              # options: image build --help)

Runs on CPython 3.11, 3.12 and 3.13; on any other Python it says so in one line and exits 2
before installing anything.

Idempotent: the virtual environment is (re)installed only when the requirement
files or the interpreter change (their hash and the Python version are kept in
.venv/.sentinelle-requirements, written only when the whole install succeeded); a .venv
made by another Python version is recreated.
"""

# No `from __future__ import annotations` and only quoted annotations: Python 3.6 to 3.10 must
# be able to compile this file, so that they get the one-line refusal instead of a traceback.
import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import venv
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
STAMP = VENV / ".sentinelle-requirements"
REQUIREMENTS = ("requirements.txt", "requirements-dev.txt", "constraints.txt", "pyproject.toml")
# The Pythons every pin in requirements*.txt and constraints.txt is checked to install on (and
# the pipeline to reproduce dvc.lock and dvclive/ on, `dev.py reproduce`). Keep in step with
# pyproject.toml's classifiers and the README.
SUPPORTED = ((3, 11), (3, 12), (3, 13))
# Set to 1 to try a Python newer than SUPPORTED anyway (wheels of the pins may be missing).
ANY_PYTHON = "SENTINELLE_ANY_PYTHON"
VERSION = ".".join(map(str, sys.version_info[:3]))  # as pyvenv.cfg writes it


def say(msg: str) -> None:
    print(f"[dev] {msg}", flush=True)


def error(msg: str) -> None:
    print(f"[dev] error: {msg}", file=sys.stderr, flush=True)


def dotted(version: "tuple[int, ...]") -> str:
    return ".".join(map(str, version))


def supported_text() -> str:
    names = [dotted(v) for v in SUPPORTED]
    return f"{', '.join(names[:-1])} and {names[-1]}"


def python_problem(version: "tuple[int, ...]", implementation: str = "cpython") -> "str | None":
    """Why this interpreter cannot run Sentinelle, as one line; None when it can."""
    if implementation == "cpython" and tuple(version[:2]) in SUPPORTED:
        return None
    found = f"{'Python' if implementation == 'cpython' else implementation} {dotted(version)}"
    if implementation != "cpython":
        why = "is not CPython (numba and the pinned wheels need CPython)"
    elif tuple(version[:2]) < SUPPORTED[0]:
        why = "is too old"
    else:
        why = (
            "is newer than Sentinelle is tested on "
            f"(its pinned wheels may be missing; {ANY_PYTHON}=1 tries anyway)"
        )
    latest = dotted(SUPPORTED[-1])
    return (
        f"{found} ({sys.executable}) {why}: Sentinelle supports CPython {supported_text()}. "
        f"Get one with `uv python install {latest}`, `pyenv install {latest}` or your OS package "
        f"(e.g. `apt install python{latest}`), "
        f"then run dev.py with it (`python{latest} dev.py ...`)"
    )


def check_python() -> "str | None":
    """python_problem() of this interpreter; a newer one passes with SENTINELLE_ANY_PYTHON=1."""
    problem = python_problem(tuple(sys.version_info[:3]), sys.implementation.name)
    newer = sys.implementation.name == "cpython" and tuple(sys.version_info[:2]) > SUPPORTED[-1]
    if problem and newer and os.environ.get(ANY_PYTHON) == "1":
        say(
            f"warning: Python {VERSION} is not among the tested {supported_text()} ({ANY_PYTHON}=1)"
        )
        return None
    return problem


class SetupError(Exception):
    """A set-up step failed; the message is one line (the step's own output is above it)."""


def shown(cmd: "tuple[str | Path, ...]") -> str:
    """A command as the error line shows it: the venv's python relative, pip's -q flags left out."""
    words = [
        str(c.relative_to(ROOT)) if isinstance(c, Path) and c.is_relative_to(ROOT) else str(c)
        for c in cmd
    ]
    return " ".join(w for w in words if w not in ("--disable-pip-version-check", "-q"))


def run(*cmd: "str | Path") -> None:
    try:
        rc = subprocess.run([str(c) for c in cmd], cwd=ROOT).returncode
    except OSError as e:
        raise SetupError(f"`{shown(cmd)}` could not start: {e}") from None
    if rc != 0:
        hint = (
            f": no connection to the package index, or a pin with no wheel for Python {VERSION}"
            if "pip" in cmd
            else ""
        )
        raise SetupError(f"`{shown(cmd)}` failed (exit code {rc}; its output is above){hint}")


def venv_version() -> "str | None":
    """The Python version .venv was made with (its pyvenv.cfg), or None when there is none."""
    try:
        lines = (VENV / "pyvenv.cfg").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        key, _, value = line.partition("=")
        if key.strip() in ("version", "version_info"):  # venv; virtualenv: 3.12.1.final.0
            return ".".join(value.strip().split(".")[:3])
    return None


def venv_unusable() -> "str | None":
    """Why .venv must be made afresh for this interpreter, or None when it can be used."""
    made_by = venv_version()
    if not PY.exists() or made_by is None:
        return "there is none" if not VENV.exists() else "it is incomplete"
    if made_by != VERSION:
        return f"it was made by Python {made_by}"
    if not any(VENV.glob("[lL]ib/*/site-packages/pip/__init__.py")) and not any(
        VENV.glob("Lib/site-packages/pip/__init__.py")
    ):
        return "it has no pip"
    return None


def setup(dev: bool) -> None:
    """Create .venv and install the pinned requirements if they changed.

    A failed step raises SetupError. The stamp is removed before installing and written only
    when everything succeeded, so the next run installs again; a .venv this run created is
    removed again when a step fails.
    """
    existed = venv_unusable() is None
    try:
        install(dev)
    except (SetupError, KeyboardInterrupt):
        if not existed and VENV.exists():
            shutil.rmtree(VENV, ignore_errors=True)
            say(f"removed the incomplete {VENV.name}; the next run creates it again")
        raise


def install(dev: bool) -> None:
    digest = hashlib.sha256(b"".join((ROOT / f).read_bytes() for f in REQUIREMENTS)).hexdigest()
    interpreter = f"{sys.implementation.name}-{VERSION}"
    stamp = STAMP.read_text().split() if STAMP.exists() else []
    unusable = venv_unusable()
    if not unusable and stamp[:2] == [digest, interpreter] and (stamp[2:] == ["dev"] or not dev):
        say(f"{VENV.name} is up to date")
        return
    if unusable:
        if VENV.exists():
            say(f"recreating {VENV} for Python {VERSION}: {unusable}")
            shutil.rmtree(VENV)
        else:
            say(f"creating virtual environment {VENV}")
        try:
            venv.create(VENV, with_pip=True)
        except (subprocess.CalledProcessError, OSError) as e:
            hint = f"on Debian/Ubuntu: `apt install python{dotted(sys.version_info[:2])}-venv`"
            raise SetupError(f"creating {VENV.name} failed ({e}); {hint}") from None
    STAMP.unlink(missing_ok=True)
    wanted = "requirements-dev.txt" if dev else "requirements.txt"
    say(f"installing {wanted} (pinned by constraints.txt)")
    pip = (PY, "-m", "pip", "install", "--disable-pip-version-check", "-q")
    run(*pip, "-r", wanted, "-c", "constraints.txt")
    say("installing the `sentinelle` command (pip install -e .)")
    run(*pip, "--no-deps", "-e", ".")
    say("compiling the SVM solver (numba; cached in src/sentinelle/modeling/fast/__pycache__)")
    run(PY, "-m", "sentinelle.modeling.fast.linear")
    STAMP.write_text(f"{digest} {interpreter} {'dev' if dev else 'runtime'}\n")


def env() -> "dict[str, str]":
    """The environment for commands in the venv: its bin first on PATH."""
    e = dict(os.environ)
    e["PATH"] = f"{BIN}{os.pathsep}{e.get('PATH', '')}"
    e["VIRTUAL_ENV"] = str(VENV)
    return e


def pipeline(args: "list[str]") -> int:
    setup(dev=False)
    if not (ROOT / ".git").exists():
        error("run this in a git clone of the repository (DVC needs git)")
        return 2
    say("running the pipeline: dvc repro " + " ".join(args))
    rc = subprocess.run([str(BIN / "dvc"), "repro", *args], cwd=ROOT, env=env()).returncode
    if rc == 0:
        say("done. Metrics: dvclive/evaluate/metrics.json (`dvc metrics show`)")
        say("plots: dvclive/evaluate/plots/ (`dvc plots show` writes dvc_plots/index.html)")
        say("model: models/model.skops with models/model.json")
    else:
        error(
            f"`dvc repro` failed (exit code {rc}; the stage's error line is above): fix what it "
            "names (README.md, Troubleshooting) and run `python3 dev.py pipeline` again"
        )
    return rc


def test(args: "list[str]") -> int:
    setup(dev=True)
    return subprocess.run([str(PY), "-m", "pytest", *args], cwd=ROOT, env=env()).returncode


def lint(args: "list[str]") -> int:
    """ruff's lint and format checks and the import layers of pyproject.toml (import-linter)."""
    setup(dev=True)
    e = env()
    e["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), e.get("PYTHONPATH")]))
    checks = (["ruff", "check", "."], ["ruff", "format", "--check", "."], ["lint-imports"])
    failed = [
        c for c in checks if subprocess.run([str(BIN / c[0]), *c[1:]], cwd=ROOT, env=e).returncode
    ]
    for c in failed:
        say("error: `" + " ".join(c) + "` failed (its findings are above)")
    return 1 if failed else 0


def s3(args: "list[str]") -> int:
    """The local S3 server of this clone: `python -m sentinelle_tools.s3local ARGS`, dev venv."""
    setup(dev=True)
    e = env()
    e["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), e.get("PYTHONPATH")]))
    return subprocess.run(
        [str(PY), "-m", "sentinelle_tools.s3local", *args], cwd=ROOT, env=e
    ).returncode


def image(args: "list[str]") -> int:
    """`python -m sentinelle_tools.image ARGS` (default: build) in the dev venv."""
    setup(dev=True)
    e = env()
    e["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), e.get("PYTHONPATH")]))
    args = args if args and args[0] in ("build", "base", "-h", "--help") else ["build", *args]
    return subprocess.run(
        [str(PY), "-m", "sentinelle_tools.image", *args], cwd=ROOT, env=e
    ).returncode


def _version_key(path: str) -> "list[int]":
    name = Path(path).parent.parent.name  # <root>/versions/3.12.1/bin/python3 -> 3.12.1
    return [int(p) if p.isdigit() else -1 for p in name.split(".")]


def find_python(version: "tuple[int, int]") -> "str | None":
    """A working CPython X.Y here: pythonX.Y on PATH, else the newest of pyenv's X.Y.* versions.

    Each candidate is run, so a pyenv shim that only says "command not found" does not count.
    """
    name = f"python{dotted(version)}"
    candidates = [p for p in [shutil.which(name)] if p]
    roots = [os.environ.get("PYENV_ROOT"), str(Path.home() / ".pyenv")]
    if shutil.which("pyenv"):
        try:
            out = subprocess.run(["pyenv", "root"], capture_output=True, text=True, timeout=30)
            roots.insert(0, out.stdout.strip())
        except (OSError, subprocess.SubprocessError):
            pass
    for root in dict.fromkeys(r for r in roots if r):
        found = glob.glob(
            os.path.join(glob.escape(root), "versions", f"{dotted(version)}.*", "bin", "python3")
        )
        candidates += sorted(found, key=_version_key, reverse=True)
    probe = "import sys; print('%d.%d' % sys.version_info[:2], sys.implementation.name)"
    for candidate in dict.fromkeys(candidates):
        try:
            out = subprocess.run(
                [candidate, "-c", probe], capture_output=True, text=True, timeout=60
            )
        except (OSError, subprocess.SubprocessError):
            continue
        if out.returncode == 0 and out.stdout.split() == [dotted(version), "cpython"]:
            return candidate
    return None


_PRINTING = threading.Lock()  # one Python's log at a time


def _reproduce_on(version: "tuple[int, int]", python: str, head: str, clean: "dict[str, str]"):
    """`dev.py pipeline` in a fresh clone of ``head`` with ``python``, then the diff of its
    outputs; its output printed at the end. (name, whether dvc.lock and dvclive/ are identical)"""
    name = f"python{dotted(version)}"
    clone = Path(tempfile.mkdtemp(prefix=f"sentinelle-{name}-")) / "sentinelle"
    with tempfile.TemporaryFile() as log:

        def run(cmd: "list[str]", **kwargs) -> int:
            log.flush()
            return subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, **kwargs).returncode

        def done(ok: bool, message: str) -> "tuple[str, bool]":
            log.seek(0)
            with _PRINTING:
                sys.stdout.write(log.read().decode(errors="replace"))
                sys.stdout.flush()
                (say if ok else error)(message)
            return name, ok

        full = subprocess.run(
            [python, "-c", "import platform; print(platform.python_version())"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        say_first = f"[dev] {name}: Python {full} ({python}); fresh clone of {head[:12]} in {clone}"
        log.write(f"{say_first}\n".encode())
        start = time.monotonic()
        rc = run(["git", "clone", "-q", "--no-checkout", str(ROOT), str(clone)])
        rc = rc or run(["git", "-C", str(clone), "checkout", "-q", head])
        rc = rc or run([python, "dev.py", "pipeline"], cwd=clone, env=clean)
        seconds = time.monotonic() - start
        if rc != 0:
            return done(
                False,
                f"{name}: the clone or `{name} dev.py pipeline` failed (exit code {rc}) "
                f"after {seconds:.0f} s; the clone is kept: {clone}",
            )
        diff = run(["git", "diff", "--stat", "--exit-code", "dvc.lock", "dvclive/"], cwd=clone)
        extra = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=all", "--", "dvc.lock", "dvclive/"],
            cwd=clone,
            capture_output=True,
            text=True,
        ).stdout
        if diff != 0 or extra:
            log.write(extra.encode())
            return done(
                False,
                f"{name}: the fresh clone's dvc.lock or dvclive/ differs from the committed one "
                f"(kept: {clone})",
            )
        shutil.rmtree(clone.parent, ignore_errors=True)
        return done(
            True,
            f"ok: {name}: `dev.py pipeline` in {seconds:.0f} s, "
            "then `git diff --exit-code dvc.lock dvclive/`: identical",
        )


def reproduce(args: "list[str]") -> int:
    """`dev.py pipeline` in a fresh clone of HEAD on other Pythons; 1 if any fails or differs."""
    try:
        versions = [tuple(int(p) for p in a.split(".")) for a in args] or [
            v for v in SUPPORTED if v != sys.version_info[:2]
        ]
    except ValueError:
        error(f"reproduce takes Python versions such as 3.12, not {' '.join(args)}")
        return 2
    unsupported = [dotted(v) for v in versions if v not in SUPPORTED]
    if unsupported:
        versions_text = ", ".join(unsupported)
        error(f"Python {versions_text}: not supported (Sentinelle supports {supported_text()})")
        return 2
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run(
        [*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    if subprocess.run(
        [*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
    ).stdout:
        say(f"note: the clones check out HEAD ({head[:12]}); uncommitted changes are not in them")
    clean = {
        k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
    }
    found = []
    for version in versions:
        python = find_python(version)
        if python is None:
            where = f"looked on PATH and in pyenv's versions/{dotted(version)}.*"
            say(f"skipped: python{dotted(version)} not found ({where})")
        else:
            found.append((version, python))
    # The Pythons run side by side (their installs are mostly one core each); each one's output
    # goes to a log, printed whole when it is done.
    with ThreadPoolExecutor(max(1, len(found))) as pool:
        results = list(pool.map(lambda vp: _reproduce_on(*vp, head, clean), found))
    failed = [name for name, ok in results if not ok]
    passed = [name for name, ok in results if ok]
    say(
        f"reproduce: {len(passed)} identical, {len(failed)} failed"
        + (f" ({', '.join(failed)})" if failed else "")
        + f", {len(versions) - len(passed) - len(failed)} skipped"
    )
    return 1 if failed else 0


# `python3 dev.py NAME ARGS` (and `setup`); the workflows' run steps are checked against it.
COMMANDS = {
    "pipeline": pipeline,
    "test": test,
    "lint": lint,
    "s3": s3,
    "image": image,
    "reproduce": reproduce,
}


def main() -> int:
    commands = COMMANDS
    if len(sys.argv) < 2 or sys.argv[1] not in (*commands, "setup"):
        print(__doc__.strip())
        return 2
    problem = check_python()
    if problem:
        error(problem)
        return 2
    try:
        if sys.argv[1] == "setup":
            setup(dev=True)
            return 0
        return commands[sys.argv[1]](sys.argv[2:])
    except SetupError as e:
        again = f"run `dev.py {sys.argv[1]}` again to retry the install"
        error(f"{e}. Nothing was marked installed; {again}")
        return 1
    except KeyboardInterrupt:
        error("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
