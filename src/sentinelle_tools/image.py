"""Build the service's container image with whichever engine this machine has.

    python -m sentinelle_tools.image build [--tag sentinelle:dev] [--context .] [--model-dir models]
    python -m sentinelle_tools.image base     # only make (or find) the local Python 3.11 base
    (or: python3 dev.py image [ARGS])

The engine is docker or podman when its daemon/service answers, else buildah (Debian's
``buildah`` builds a Dockerfile without any daemon: ``buildah bud --isolation chroot``).
The default base, ``python:3.11-slim``, is pulled when the registry can be reached; when it
cannot, a Python 3.11 base is made from Debian's own packages (``debootstrap --variant=minbase
--include=python3,python3-venv bookworm``, about 1.5 min, as root), kept as a tar file in the
git-ignored ``.image/`` folder and imported as the local image ``BASE_TAG``.

pip inside the build gets this machine's pip configuration and CA bundle as build secrets
(``--secret id=pipconf`` / ``id=pipcert``, mounted for the install step only, never in a
layer), without the entries that name this machine's folders (find-links, constraints,
``file://`` indexes).
"""

from __future__ import annotations

import argparse
import configparser
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

log = logging.getLogger("sentinelle_tools.image")

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".image"
DEFAULT_BASE = "python:3.11-slim"
BASE_TAG = "localhost/sentinelle-base:bookworm-python3.11"
DEFAULT_TAG = "localhost/sentinelle:dev"
SUITE = "bookworm"  # Debian 12: Python 3.11
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# pip settings that name this machine's folders, meaningless inside a build.
HOST_ONLY = {"find-links", "constraint", "constraints", "requirement", "requirements", "cert"}
# Left out of the base: package caches, documentation, locales.
PRUNE = (
    "var/cache/apt/archives",
    "var/lib/apt/lists",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
)


class ImageError(Exception):
    """A build step failed; the message is one line."""


def _ok(*cmd: str, timeout: float = 60) -> bool:
    try:
        return subprocess.run(cmd, capture_output=True, timeout=timeout).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def engine() -> str:
    """docker or podman if it answers, else buildah; ``ImageError`` when none is usable."""
    for name in ("docker", "podman"):
        if shutil.which(name) and _ok(name, "info"):
            return name
    if shutil.which("buildah"):
        return "buildah"
    raise ImageError(
        "no container engine: install docker, podman or buildah "
        "(Debian: apt-get install -y buildah debootstrap)"
    )


def run(*cmd: str, timeout: float = 1800) -> None:
    log.info("$ %s", " ".join(cmd))
    rc = subprocess.run(cmd, timeout=timeout).returncode
    if rc != 0:
        raise ImageError(f"`{' '.join(cmd[:3])} …` failed (exit code {rc}; its output is above)")


def image_exists(tool: str, ref: str) -> bool:
    if tool == "buildah":
        return _ok("buildah", "inspect", "--type", "image", ref)
    return _ok(tool, "image", "inspect", ref)


def base_tar() -> Path:
    """The debootstrapped Python 3.11 root file system as a tar file (made once, cached)."""
    tar = CACHE / f"{SUITE}-python3.11.tar"
    if tar.is_file():
        return tar
    if not shutil.which("debootstrap"):
        raise ImageError(
            f"{DEFAULT_BASE} cannot be pulled and debootstrap is missing to make a local base "
            "(Debian: apt-get install -y debootstrap)"
        )
    if os.geteuid() != 0:
        raise ImageError("debootstrap needs root to make the local base image")
    CACHE.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        rootfs = Path(tmp) / "rootfs"
        start = time.monotonic()
        run(
            "debootstrap", "--variant=minbase", "--include=python3,python3-venv", SUITE, str(rootfs)
        )
        for rel in PRUNE:
            shutil.rmtree(rootfs / rel, ignore_errors=True)
        part = tar.with_suffix(".part")
        run("tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(part), ".")
        part.replace(tar)
        log.info(
            "made %s in %.0f s (%.0f MB)", tar, time.monotonic() - start, tar.stat().st_size / 1e6
        )
    return tar


def local_base(tool: str) -> str:
    """``BASE_TAG`` in the engine's storage, imported from ``base_tar()`` when absent."""
    if image_exists(tool, BASE_TAG):
        return BASE_TAG
    tar = base_tar()
    if tool == "buildah":
        ctr = subprocess.run(
            ["buildah", "from", "scratch"], capture_output=True, text=True, check=True
        ).stdout.strip()
        try:
            run("buildah", "add", ctr, str(tar), "/")
            run("buildah", "config", "--env", "PATH=" + BASE_PATH, ctr)
            run("buildah", "commit", "-q", ctr, BASE_TAG)
        finally:
            _ok("buildah", "rm", ctr)
    else:
        run(tool, "import", "--change", f"ENV PATH={BASE_PATH}", str(tar), BASE_TAG)
    return BASE_TAG


def base(tool: str, wanted: str | None) -> str:
    """The base image to build on: ``wanted``, else the default if it can be pulled, else local."""
    if wanted:
        return wanted
    if image_exists(tool, DEFAULT_BASE):
        return DEFAULT_BASE
    if image_exists(tool, BASE_TAG):  # made before: this machine could not pull the default
        log.info("building on the local base %s (--base %s to pull that)", BASE_TAG, DEFAULT_BASE)
        return BASE_TAG
    if _ok(tool, "pull", "-q", DEFAULT_BASE, timeout=120):
        return DEFAULT_BASE
    log.info("%s cannot be pulled here: building on a local Debian %s base", DEFAULT_BASE, SUITE)
    return local_base(tool)


def pip_config() -> dict[str, str]:
    """This machine's pip settings (``pip config list``) as ``{key: value}``, global section."""
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True
    )
    out: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        key, _, value = line.partition("=")
        name = key.rsplit(".", 1)[-1]
        out[name] = value.strip().strip("'\"")
    cert = os.environ.get("PIP_CERT")
    if cert:
        out["cert"] = cert
    return out


def secrets(folder: Path) -> list[str]:
    """Write the build's pip secrets into ``folder``; the engine's ``--secret`` arguments."""
    settings = pip_config()
    conf = configparser.ConfigParser()
    conf["global"] = {}
    for key, value in settings.items():
        if key in HOST_ONLY:
            continue
        urls = [u for u in value.split() if not u.startswith("file:")]
        if urls:
            conf["global"][key] = " ".join(urls)
    args = []
    cert = settings.get("cert")
    if cert and Path(cert).is_file():
        shutil.copyfile(cert, folder / "pipcert")
        conf["global"]["cert"] = "/run/secrets/pipcert"
        args += ["--secret", f"id=pipcert,src={folder / 'pipcert'}"]
    with open(folder / "pipconf", "w", encoding="utf-8") as fh:
        conf.write(fh)
    return [*args, "--secret", f"id=pipconf,src={folder / 'pipconf'}"]


def build(tag: str, context: Path, model_dir: str, base_image: str | None) -> str:
    tool = engine()
    chosen = base(tool, base_image)
    for name in ("model.skops", "model.json"):
        if not (context / model_dir / name).is_file():
            raise ImageError(
                f"{context / model_dir / name}: not found; the image serves a model: "
                "`dvc pull models/model.skops models/model.json`, `dvc repro`, or "
                "`sentinelle fetch --stage prod -o served/` and --model-dir served"
            )
    with tempfile.TemporaryDirectory() as tmp:
        secret_args = secrets(Path(tmp))
        cmd = [tool, "bud" if tool == "buildah" else "build"]
        if tool == "buildah":
            cmd += ["--isolation", "chroot", "--format", "docker", "--layers"]
        cmd += [
            *secret_args,
            "--build-arg", f"BASE_IMAGE={chosen}",
            "--build-arg", f"MODEL_DIR={model_dir}",
            "-f", str(ROOT / "Dockerfile"),
            "-t", tag,
            str(context),
        ]  # fmt: skip
        start = time.monotonic()
        run(*cmd)
    log.info("built %s with %s on %s in %.0f s", tag, tool, chosen, time.monotonic() - start)
    return tool


def size(tool: str, tag: str) -> int:
    """The image's size in bytes, as the engine reports it."""
    if tool == "buildah":
        out = subprocess.run(
            ["buildah", "images", "--json", tag], capture_output=True, text=True, check=True
        ).stdout
        number, unit = json.loads(out)[0]["size"].split()  # "536 MB": decimal units
        return round(float(number) * {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}[unit])
    out = subprocess.run(
        [tool, "image", "inspect", "--format", "{{.Size}}", tag],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return int(out.strip())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sentinelle_tools.image", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build the service image")
    b.add_argument("--tag", default=DEFAULT_TAG, help="(default: %(default)s)")
    b.add_argument("--context", type=Path, default=ROOT, help="build context (default: the repo)")
    b.add_argument("--model-dir", default="models", help="folder of model.skops + model.json")
    b.add_argument("--base", help=f"base image (default: {DEFAULT_BASE} or the local base)")
    sub.add_parser("base", help="make or find the local Python 3.11 base image")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[image] %(message)s", stream=sys.stderr)
    try:
        if args.command == "base":
            print(local_base(engine()))
            return 0
        tool = build(args.tag, args.context, args.model_dir, args.base)
        log.info("%s: %.0f MB", args.tag, size(tool, args.tag) / 1e6)
        print(args.tag)
        return 0
    except ImageError as exc:
        sys.stderr.write(f"[image] error: {exc}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
