"""The cleaner's routes: `create_app(root, settings)` builds one FastAPI app over one dataset.

Owns the HTTP surface: the page (`/`, `/static/*`; it holds no data), `GET /api/state` (every item
with its labels, decision, location and label-issue score), `GET /api/dupes`, `GET /api/image`
(an item's file, by `id` or by a `path` confined to the root), `POST /api/decide`, `POST /api/undo`,
the token rule and the JSON error shape `{"error": one line}`. The page's URLs are relative, so it
also works behind a path prefix (Jupyter's server proxy, Colab's port proxy).
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from pixclass.cleaner.paths import PathRejected
from pixclass.cleaner.session import BadRequest, CleaningSession, Conflict, NotFound
from pixclass.cleaner.settings import CleanerSettings
from pixclass.cleaner.source import load_dataset
from pixclass.cleaner.views import Duplicates, read_label_issues
from pixclass.errors import PixclassError

log = logging.getLogger("pixclass.cleaner")
STATIC = Path(str(files("pixclass.cleaner").joinpath("static")))
_STATUS = {PathRejected: 400, BadRequest: 400, NotFound: 404, Conflict: 409}


class Decision(BaseModel):
    """The body of POST /api/decide: the item (its id, or its path relative to the root), the action
    (keep, relabel, trash, file) and, to relabel or file, the new labels."""

    item: int | str
    action: str
    labels: list[str] | None = None


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


def create_app(root: str | os.PathLike, settings: CleanerSettings | None = None) -> FastAPI:
    """A FastAPI app cleaning the dataset of `root` (a run folder or an image folder).

    The dataset is read and the journal replayed here, so a bad folder fails before any port is
    bound. `app.state.cleaner` is the `CleaningSession`; it is closed (the folder released) when the
    app shuts down, or by calling `app.state.cleaner.close()`.

    Raises:
        PixclassError: `root` is no dataset, or another cleaner holds it.
    """
    settings = settings or CleanerSettings()
    session = CleaningSession(load_dataset(root), settings)
    try:
        issues = read_label_issues(session)
        dupes = Duplicates(session, settings.find_dupes, settings.dupes_workers)
    except BaseException:
        session.close()
        raise

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            session.close()

    app = FastAPI(title="pixclass clean", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.cleaner = session
    _add_error_handlers(app)
    auth = Depends(_token_check(settings.token))
    same_site = Depends(_same_origin if settings.check_origin else _anywhere)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/state", dependencies=[auth])
    def state() -> dict:
        return _state(session, settings, issues)

    @app.get("/api/dupes", dependencies=[auth])
    def duplicates() -> dict:
        return dupes.answer()

    @app.get("/api/image", dependencies=[auth])
    def image(id: int | None = Query(None), path: str | None = Query(None)) -> FileResponse:
        if (id is None) == (path is None):
            raise ApiError(400, "give exactly one of ?id=N or ?path=relative/path")
        index = session.item(id if id is not None else path)  # type: ignore[arg-type]
        return FileResponse(session.file_of(index), headers={"Cache-Control": "private, max-age=3600"})

    @app.post("/api/decide", dependencies=[auth, same_site])
    def decide(decision: Decision) -> dict:
        changed = session.decide(decision.item, decision.action, decision.labels)
        return {"item": changed, "undo": session.undo_depth(), "classes": session.classes}

    @app.post("/api/undo", dependencies=[auth, same_site])
    def undo() -> dict:
        changed = session.undo()
        return {"item": changed, "undo": session.undo_depth(), "classes": session.classes}

    return app


def _state(session: CleaningSession, settings: CleanerSettings, issues: dict[str, Any]) -> dict:
    d = session.dataset
    scores = issues["scores"]
    items = []
    for i, it in enumerate(session.items):
        row = it.public(i)
        row.update(scores.get(it.key, {}))
        items.append(row)
    return {
        "root": str(session.root), "run": str(d.run) if d.run else None, "layout": d.layout, "multi": d.multi,
        "apply": settings.apply and d.layout != "csv" and not d.multi, "classes": session.classes,
        "sort": {"active": session.sort_mode(), "classes": session.sort_classes},
        "cleaned_csv": session.cleaned_csv.name, "undo": session.undo_depth(),
        "notes": session.notes + ([f"{d.outside} images reached through links leading outside the folder are not shown"]
                                  if d.outside else []),
        "label_issues": {"file": issues["file"], "command": issues["command"], "count": len(scores),
                         "unmatched": issues["unmatched"]},
        "items": items,
    }


def _token_check(token: str | None):
    expected = token.encode() if token else None

    def check(request: Request) -> None:
        if expected is None:
            return
        given = request.headers.get("x-token") or request.query_params.get("token") or ""
        scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            given = bearer.strip()
        if not hmac.compare_digest(given.encode(), expected):
            raise ApiError(401, "missing or wrong token: open the page as http://HOST:PORT/?token=T "
                                "(API: 'X-Token: T', 'Authorization: Bearer T' or ?token=T)",
                           {"WWW-Authenticate": "Bearer"})

    return check


def _anywhere(request: Request) -> None:
    return None


def _same_origin(request: Request) -> None:
    """Refuse a change sent by another site's page (a form posted to 127.0.0.1 from anywhere):
    browsers name the page's origin on every POST, and ours is the host the request came to."""
    origin = request.headers.get("origin")
    if origin and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise ApiError(403, f"refused a change sent from another site ({origin}): use the cleaner's own page")


def _add_error_handlers(app: FastAPI) -> None:
    def answer(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, err: ApiError) -> JSONResponse:
        return answer(err.status, err.message, err.headers)

    @app.exception_handler(PixclassError)
    async def pixclass_error(request: Request, err: PixclassError) -> JSONResponse:
        status = next((code for kind, code in _STATUS.items() if isinstance(err, kind)), 500)
        return answer(status, str(err).splitlines()[0])

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        return answer(err.status_code, str(err.detail), getattr(err, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        first = err.errors()[0] if err.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x not in ("query", "body"))
        return answer(400, f"bad parameter {where}: {first.get('msg', 'invalid')}")

    @app.exception_handler(Exception)
    async def internal(request: Request, err: Exception) -> JSONResponse:
        log.exception("pixclass clean: internal error answering %s", request.url.path)
        return answer(500, f"internal error ({type(err).__name__}); see the server log")
