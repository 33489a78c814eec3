"""A comparison people can look at: ``dvc plots diff`` as an HTML page that renders
offline, checked (and photographed) in headless Chromium with the network off.

DVC's own HTML loads vega, vega-lite and vega-embed from a CDN (``dvc_render``), which a
machine without internet cannot reach. The repository's ``.dvc/config`` sets
``plots.html_template`` to a page that inlines them (``vendor/plots-template.html``, from the
npm registry: vendor/README.md), so ``dvc plots show`` and ``dvc plots diff`` draw offline;
these reports fill the same template, with their own title.
"""

from __future__ import annotations

import html
import logging
import math
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from dvc.config import Config
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
# No network but loopback: every other request goes to a proxy that is not there.
OFFLINE_FLAGS = ("--proxy-server=127.0.0.1:9",)
CHROMIUM_FLAGS = (
    *HEADLESS_FLAGS,
    *OFFLINE_FLAGS,
    "--hide-scrollbars",
    "--virtual-time-budget=15000",
)
# The template's title (vendor/plots-template.html, made by sentinelle_tools.vendor).
TEMPLATE_TITLE = "Sentinelle plots"


def template_path(root: Path) -> Path:
    """The page template ``dvc plots`` fills: ``plots.html_template`` of the repository's
    ``.dvc/config`` (relative to ``.dvc/``, as DVC reads it)."""
    config = Config(dvc_dir=str(root / ".dvc"), validate=False).get("plots", {})
    name = config.get("html_template")
    if not name:
        raise UserError(f"{root / '.dvc/config'}: no plots.html_template (vendor/README.md)")
    path = root / ".dvc" / name
    if not path.is_file():
        raise UserError(f"{path}: the plots template is missing (vendor/README.md)")
    return path


def render(revs: list[str], out: Path, root: Path, title: str) -> Path:
    """`dvc plots diff REVS` into ``out``/index.html, self-contained (works offline)."""
    out.mkdir(parents=True, exist_ok=True)
    page = template_path(root).read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        template = Path(tmp) / "template.html"
        template.write_text(page.replace(TEMPLATE_TITLE, html.escape(title)), encoding="utf-8")
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
