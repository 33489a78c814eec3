"""Vendor the browser scripts Sentinelle's pages need, from the npm registry, so that no page
loads anything from a CDN: ``PYTHONPATH=src python -m sentinelle_tools.vendor``.

- vega, vega-lite and vega-embed are inlined into ``vendor/plots-template.html``, the page
  ``dvc plots show`` / ``dvc plots diff`` fill (``plots.html_template`` in ``.dvc/config``) and
  the experiment-plan reports use;
- swagger-ui-dist and redoc go to ``src/sentinelle/serving/docs/`` (package data), served at
  ``/docs`` and ``/redoc`` by ``sentinelle serve``.

Each package is fetched with ``npm pack NAME@VERSION`` at the version pinned in ``PACKAGES``;
its licence files are copied beside what it gives, and ``vendor/manifest.json`` records the
version, npm's integrity hash and the SHA-256 of every file taken (``tests/test_offline_pages.py``
checks the files against it). To update: change a version in ``PACKAGES``, run this module,
run the tests, commit what changed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("sentinelle_tools.vendor")

ROOT = Path(__file__).resolve().parents[2]
VENDOR = ROOT / "vendor"
TEMPLATE = VENDOR / "plots-template.html"
MANIFEST = VENDOR / "manifest.json"
DOCS = ROOT / "src" / "sentinelle" / "serving" / "docs"
TITLE = "Sentinelle plots"


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    files: tuple[str, ...]  # paths inside the tarball's package/ folder
    dest: Path  # where its files and licences go
    licences: tuple[str, ...]  # licence files inside the tarball
    licence_text: str | None = None  # when the tarball ships none: where the text is from


# vega's npm package ships no LICENSE file; vendor/licenses/vega.txt is its repository's.
PACKAGES = (
    Package("vega", "5.33.1", ("build/vega.min.js",), VENDOR, (), "github.com/vega/vega LICENSE"),
    Package("vega-lite", "5.23.0", ("build/vega-lite.min.js",), VENDOR, ("LICENSE",)),
    Package("vega-embed", "6.29.0", ("build/vega-embed.min.js",), VENDOR, ("LICENSE",)),
    Package(
        "swagger-ui-dist",
        "5.36.0",
        ("swagger-ui-bundle.js", "swagger-ui.css"),
        DOCS,
        ("LICENSE", "swagger-ui-bundle.js.LICENSE.txt"),
    ),
    Package(
        "redoc",
        "2.5.4",
        ("bundles/redoc.standalone.js",),
        DOCS,
        ("LICENSE", "bundles/redoc.standalone.js.LICENSE.txt"),
    ),
)
PLOT_SCRIPTS = ("vega", "vega-lite", "vega-embed")

PAGE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>{title}</title>
<!-- Made by `python -m sentinelle_tools.vendor` (vendor/README.md): vega, vega-lite and
vega-embed from the npm registry, inlined, so the page draws its plots with no network.
DVC replaces the plot_divs placeholder below with the plots. -->
<style>
body {{ font-family: sans-serif; margin: 16px; }}
body > div {{ display: inline-block; vertical-align: top; margin: 0 24px 24px 0; }}
</style>
{scripts}
</head>
<body>
<h2>{title}</h2>
{{plot_divs}}
</body>
</html>
"""
# What DVC replaces in a template (dvc_render.html.HTML.embed), and what would end an
# inlined script early: none may appear inside a script.
FORBIDDEN = ("{plot_divs}", "{scripts}", "{refresh_tag}", "</script")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def npm_pack(package: Package, workdir: Path) -> tuple[Path, str]:
    """The package's tarball from the npm registry, and npm's integrity hash of it."""
    npm = shutil.which("npm")
    if not npm:
        sys.exit("vendor: error: npm is not installed (Debian: apt-get install -y npm)")
    spec = f"{package.name}@{package.version}"
    proc = subprocess.run(
        [npm, "pack", "--json", spec],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        sys.exit(f"vendor: error: `npm pack {spec}` failed: {proc.stderr.strip()[-300:]}")
    [info] = json.loads(proc.stdout)
    return workdir / info["filename"], info["integrity"]


def extract(tarball: Path, member: str) -> bytes:
    with tarfile.open(tarball) as tar:
        data = tar.extractfile(f"package/{member}")
        if data is None:
            sys.exit(f"vendor: error: {tarball.name} has no {member}")
        return data.read()


def template(scripts: dict[str, bytes], versions: dict[str, str]) -> str:
    """The plots page template with the scripts inlined, in order."""
    parts = []
    for name in PLOT_SCRIPTS:
        text = scripts[name].decode("utf-8")
        for bad in FORBIDDEN:
            if bad in text:
                sys.exit(f"vendor: error: {name} contains {bad!r}: it cannot be inlined")
        parts.append(f"<script>/* {name} {versions[name]} (vendor/README.md) */\n{text}\n</script>")
    return PAGE.format(title=TITLE, scripts="\n".join(parts))


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    logging.basicConfig(level=logging.INFO, format="vendor: %(message)s")
    manifest: dict[str, dict] = {}
    scripts: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for package in PACKAGES:
            tarball, integrity = npm_pack(package, Path(tmp))
            entry = {"version": package.version, "integrity": integrity, "files": {}}
            for member in package.files:
                data = extract(tarball, member)
                name = Path(member).name
                entry["files"][name] = sha256(data)
                if package.name in PLOT_SCRIPTS:
                    scripts[package.name] = data
                else:
                    (package.dest / name).write_bytes(data)
            licences = package.dest / "licenses" if package.dest == VENDOR else package.dest
            licences.mkdir(parents=True, exist_ok=True)
            for member in package.licences:
                name = Path(member).name
                if name == "LICENSE":
                    suffix = "txt" if package.dest == VENDOR else "LICENSE"
                    name = f"{package.name}.{suffix}"
                (licences / name).write_bytes(extract(tarball, member))
            if package.licence_text:
                entry["licence"] = package.licence_text
            manifest[package.name] = entry
            log.info("%s@%s: %s", package.name, package.version, ", ".join(entry["files"]))
    page = template(scripts, {p.name: p.version for p in PACKAGES})
    TEMPLATE.write_text(page, encoding="utf-8")
    MANIFEST.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    log.info("wrote %s (%d bytes) and %s", TEMPLATE.relative_to(ROOT), len(page), MANIFEST.name)


if __name__ == "__main__":
    main()
