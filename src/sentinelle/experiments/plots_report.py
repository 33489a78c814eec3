"""A comparison people can look at: ``dvc plots diff`` as an HTML page that renders
offline, checked (and photographed) in headless Chromium.

DVC's HTML loads vega, vega-lite and vega-embed from cdn.jsdelivr.net
(``dvc_render.vega.VegaRenderer.SCRIPTS``), which a machine without internet cannot
reach. We pass ``dvc plots diff --html-template`` a page that inlines the same
versions instead; they come from the npm registry (``npm pack``) once and are kept
in ``~/.cache/sentinelle/vega`` (or ``$SENTINELLE_VEGA_DIR``).
"""

from __future__ import annotations

import html
import logging
import math
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from dvc_render.vega import VegaRenderer
from PIL import Image

from sentinelle.errors import UserError

log = logging.getLogger("sentinelle.experiments")

# Headless, and quiet on a closed network (no background or update connections).
HEADLESS_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
CHROMIUM_FLAGS = (*HEADLESS_FLAGS, "--hide-scrollbars", "--virtual-time-budget=15000")

PAGE = """<!DOCTYPE html>
<html>
<head>
    <meta charset="utf-8">
    <title>{title}</title>
    {inline_scripts}
    <style>
        body {{ font-family: sans-serif; margin: 16px; }}
        body > div {{ display: inline-block; vertical-align: top; margin: 0 24px 24px 0; }}
    </style>
</head>
<body>
    <h2>{title}</h2>
    {{plot_divs}}
</body>
</html>"""


def cache_dir() -> Path:
    return Path(
        os.environ.get("SENTINELLE_VEGA_DIR") or Path.home() / ".cache" / "sentinelle" / "vega"
    )


def vega_packages() -> list[tuple[str, str]]:
    """(package, version) of the scripts DVC's HTML would load from the CDN, in order."""
    found = re.findall(r"cdn\.jsdelivr\.net/npm/([\w-]+)@([\w.-]+)", VegaRenderer.SCRIPTS)
    if not found:
        raise UserError(
            "dvc_render's vega scripts changed: no cdn.jsdelivr.net/npm/<pkg>@<version> found"
        )
    return found


def vega_scripts(cache: Path | None = None) -> list[Path]:
    """The vega/vega-lite/vega-embed builds DVC expects, fetched with `npm pack` once."""
    cache = cache or cache_dir()
    paths = []
    for package, ver in vega_packages():
        path = cache / f"{package}-{ver}.min.js"
        if not path.is_file():
            npm = shutil.which("npm")
            if not npm:
                raise UserError(
                    f"{path} is missing and npm is not installed: "
                    f"put {package}@{ver}'s build/{package}.min.js there"
                )
            cache.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory() as tmp:
                proc = subprocess.run(
                    [npm, "pack", "--silent", f"{package}@{ver}"],
                    cwd=tmp,
                    capture_output=True,
                    text=True,
                    timeout=300,
                )
                if proc.returncode != 0:
                    raise UserError(
                        f"`npm pack {package}@{ver}` failed: "
                        f"{(proc.stderr.strip().splitlines() or [''])[-1]}"
                    )
                [tgz] = Path(tmp).glob("*.tgz")
                with tarfile.open(tgz) as tar:
                    member = tar.extractfile(f"package/build/{package}.min.js")
                    if member is None:
                        raise UserError(f"{tgz.name} has no build/{package}.min.js")
                    part = path.with_suffix(".part")
                    part.write_bytes(member.read())
                    part.replace(path)
            log.info("cached %s", path)
        paths.append(path)
    return paths


def offline_template(title: str, scripts: list[Path]) -> str:
    """An HTML template for `dvc plots diff --html-template` with the scripts inlined."""
    inline = "\n".join(f"<script>\n{p.read_text(encoding='utf-8')}\n</script>" for p in scripts)
    for placeholder in ("{plot_divs}", "{scripts}", "{refresh_tag}", "</script"):
        if any(placeholder in p.read_text(encoding="utf-8") for p in scripts):
            raise UserError(
                f"a vega script contains {placeholder!r}: cannot inline it into the template"
            )
    return PAGE.format(title=html.escape(title), inline_scripts=inline)


def render(revs: list[str], out: Path, root: Path, title: str) -> Path:
    """`dvc plots diff REVS` into ``out``/index.html, self-contained (works offline)."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        template = Path(tmp) / "template.html"
        template.write_text(offline_template(title, vega_scripts()), encoding="utf-8")
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "dvc",
                "plots",
                "diff",
                *revs,
                "--html-template",
                str(template),
                "-o",
                str(out.resolve()),
            ],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=600,
        )
    if proc.returncode != 0:
        raise UserError(
            f"`dvc plots diff {' '.join(revs)}` failed: "
            f"{(proc.stderr.strip().splitlines() or [''])[-1]}"
        )
    return out / "index.html"


def chromium() -> str | None:
    return (
        shutil.which("chromium")
        or shutil.which("chromium-browser")
        or shutil.which("google-chrome")
    )


def _browser(page: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[bytes]:
    exe = chromium()
    if not exe:
        raise UserError("headless check needs Chromium (Debian: apt-get install -y chromium)")
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, page.resolve().as_uri()],
            capture_output=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )


@dataclass
class Check:
    plots: int  # vega plots on the page
    rendered: int  # of which vega-embed drew a canvas/svg
    ink: float  # fraction of screenshot pixels that are not white

    @property
    def ok(self) -> bool:
        return self.plots > 0 and self.rendered == self.plots and self.ink > 0.01


def check(page: Path, screenshot: Path, width: int = 1400) -> Check:
    """Open the page in headless Chromium: count rendered plots, photograph it, measure ink."""
    plots = len(re.findall(r"vegaEmbed\(", page.read_text(encoding="utf-8")))
    height = 120 + 340 * math.ceil(plots / 2) + 220  # two plots per row, room for wide ones
    dom = _browser(page, "--dump-dom").stdout.decode("utf-8", "replace")
    rendered = len(re.findall(r'<(?:canvas|svg)[^>]*class="marks"', dom))
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    shot = _browser(page, f"--screenshot={screenshot.resolve()}", f"--window-size={width},{height}")
    if not screenshot.is_file():
        raise UserError(
            f"chromium wrote no screenshot: {shot.stderr.decode(errors='replace').strip()[-300:]}"
        )
    with Image.open(screenshot) as img:
        gray = img.convert("L")
        hist = gray.histogram()
        ink = 1 - sum(hist[245:]) / (gray.width * gray.height)
    return Check(plots, rendered, ink)


def shrink(png: Path, dest: Path, width: int = 900, colors: int = 256) -> None:
    """A small copy of a screenshot for the docs (scaled, palette)."""
    with Image.open(png) as img:
        img = img.convert("RGB")
        img = img.resize((width, round(img.height * width / img.width)), Image.LANCZOS)
        dest.parent.mkdir(parents=True, exist_ok=True)
        img.quantize(colors=colors).save(dest, optimize=True)
