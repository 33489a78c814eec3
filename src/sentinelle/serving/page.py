"""The web page `sentinelle serve` shows at ``/``, and the evaluation it reads.

    GET /                               the page (``page/index.html``)
    GET /page/{app.js,style.css}        its files, shipped in the package (no CDN, no build)
    GET /model/evaluation               the served model's evaluation, read from its project
    GET /model/evaluation/images/NAME   an image of that evaluation (``top_features.png``)

The evaluation is what the ``evaluate`` stage committed in the project folder of the model
(the folder above ``models/model.skops``): ``dvclive/evaluate/metrics.json`` (with every
figure of ``details.json`` beside it, when it is there), its ROC and confusion-matrix plot
data and images, and the ingest stage's ``data/report.json``. Each piece is ``null``
(images: ``[]``) when its file is absent, e.g. for a model fetched into another folder.
``of_served_model`` tells whether that evaluation is of the served model file: its MD5
against the one ``dvc.lock`` records for the ``evaluate`` stage's ``models/model.skops``
(``null`` without that record). Files are read once, on first request.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml
from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from sentinelle import paths

log = logging.getLogger("sentinelle.api")

PAGE = Path(__file__).with_name("page")
# Everything from this server: no inline script, nothing from elsewhere.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
EVALUATE = Path("dvclive") / "evaluate"
REPORT_KEYS = ("rows_read", "rows", "duplicates", "dropped", "splits")


def project_folder(model_path: Path) -> Path:
    """The DVC project a model file belongs to: ``PROJECT/models/model.skops`` -> PROJECT."""
    return Path(model_path).resolve().parent.parent


def evaluated_model_md5(project: Path) -> str | None:
    """The MD5 of ``models/model.skops`` as the ``evaluate`` stage last read it (dvc.lock)."""
    try:
        lock = yaml.safe_load((project / "dvc.lock").read_text(encoding="utf-8"))
        deps = lock["stages"]["evaluate"]["deps"]
        return next(str(d["md5"]) for d in deps if d.get("path") == paths.MODEL.as_posix())
    except (OSError, yaml.YAMLError, KeyError, TypeError, StopIteration):
        return None


def evaluation(project: Path, model_path: Path | None = None) -> dict[str, Any]:
    """The headline metrics, ROC points, confusion counts, image names and data report of
    the evaluation committed in ``project``, and whether it is of ``model_path`` (see the
    module docstring)."""
    folder = project / EVALUATE
    metrics = _read(folder / "metrics.json")
    details = _read(folder / "details.json")
    if isinstance(metrics, dict) and isinstance(details, dict):
        metrics = {**details, **metrics}
    roc = _read(folder / "plots" / "sklearn" / "roc.json")
    confusion = _read(folder / "plots" / "sklearn" / "confusion_matrix.json")
    report = _read(project / "data" / "report.json")
    images = folder / "plots" / "images"
    counts = None
    if isinstance(confusion, list):
        pairs = Counter((str(r.get("actual")), str(r.get("predicted"))) for r in confusion)
        counts = [{"actual": a, "predicted": p, "count": n} for (a, p), n in sorted(pairs.items())]
    evaluated = evaluated_model_md5(project)
    of_served = None
    if evaluated is not None and model_path is not None:
        with open(model_path, "rb") as fh:
            of_served = hashlib.file_digest(fh, "md5").hexdigest() == evaluated
    return {
        "source": EVALUATE.as_posix(),
        "of_served_model": of_served,
        "metrics": metrics if isinstance(metrics, dict) else None,
        "roc": [{"fpr": p["fpr"], "tpr": p["tpr"]} for p in roc["roc"]]
        if isinstance(roc, dict) and isinstance(roc.get("roc"), list)
        else None,
        "confusion": counts,
        "images": sorted(p.name for p in images.glob("*.png")) if images.is_dir() else [],
        "data_report": {k: report[k] for k in REPORT_KEYS if k in report}
        if isinstance(report, dict)
        else None,
    }


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("%s: cannot read it: %s", path.name, exc)
        return None


def install(
    app: FastAPI, model_path: Path, ready: Callable[[], Any], guarded: Sequence[Any] = ()
) -> None:
    """Add the page, its files and the evaluation routes to ``app``.

    ``ready`` raises (503) while the model is not loaded; ``guarded``: the dependencies of
    ``/model/evaluation`` (a token check when scoring needs one).
    """
    project = project_folder(model_path)
    cache: dict[str, Any] = {}
    index = (PAGE / "index.html").read_text(encoding="utf-8")
    headers = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"}

    @app.get("/", include_in_schema=False)
    async def home() -> HTMLResponse:
        return HTMLResponse(index, headers=headers)

    app.mount("/page", StaticFiles(packages=[("sentinelle.serving", "page")]), name="page")

    not_ready = {503: {"description": "The model is not loaded (yet)"}}

    @app.get("/model/evaluation", tags=["model"], responses=not_ready, dependencies=list(guarded))
    async def model_evaluation() -> dict[str, Any]:
        """The served model's evaluation as committed in its project folder (null: absent)."""
        ready()
        if "evaluation" not in cache:
            cache["evaluation"] = evaluation(project, model_path)
        return cache["evaluation"]

    @app.get(
        "/model/evaluation/images/{name}",
        tags=["model"],
        response_class=Response,
        responses={
            200: {"content": {"image/png": {}}, "description": "The PNG image"},
            404: {"description": "No such image: the detail lists those there are"},
            **not_ready,
        },
    )  # open even when scoring needs a token: an <img> cannot send one
    async def model_image(name: str) -> FileResponse:
        """One image listed in ``/model/evaluation``'s ``images``."""
        ready()
        images = cache.get("evaluation") or evaluation(project, model_path)
        if name not in images["images"]:
            raise HTTPException(404, f"no image {name!r}; the images are {images['images']}")
        path = project / EVALUATE / "plots" / "images" / name
        return FileResponse(path, media_type="image/png", headers={"Cache-Control": "no-cache"})
