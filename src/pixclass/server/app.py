"""The inference server's routes: `create_app(predictor, settings)` builds one FastAPI app.

Owns the HTTP surface: the upload page (`/`, `/static/*`), `POST /predict`, `/health`, `/ready`,
`/info`, `/metrics`, the API-key rule and the JSON error shape `{"error": one line, "file": name
or null}` that every failure takes (a bad request never takes the server down). Uploads are read
by `uploads`, decoded in a thread pool, predicted by `batcher`; nothing heavy runs on the loop.
`app_from_environ()` is the factory uvicorn's worker processes call (`--workers N`).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pixclass.errors import ImageReadError, PixclassError
from pixclass.server.batcher import DirectInference, Inference, MicroBatcher
from pixclass.server.metrics import ServerMetrics
from pixclass.server.settings import ServerSettings, settings_from_environ
from pixclass.server.uploads import Upload, UploadRejected, read_uploads

log = logging.getLogger("pixclass.server")
STATIC = Path(str(files("pixclass.server").joinpath("static")))
DEFAULT_TOP_K = 5  # classes listed per image unless ?top_k= asks otherwise (capped at the class count)
# Decoding threads: PIL releases the GIL while decoding, so two threads use both cores of a small
# machine; the model runs in its own thread(s) (see `batcher`).
DECODE_THREADS = 2


def create_app(predictor: Any | Callable[[], Any], settings: ServerSettings | None = None) -> FastAPI:
    """A FastAPI app serving `predictor`.

    Args:
        predictor: a loaded `pixclass.export.predictor.Predictor`, or a function returning one
            (called in a background thread at start-up, so /health answers while it loads).
            Either way the model is warmed up in the background; /ready answers 503 until then.
        settings: limits, batching and API key (`ServerSettings()` defaults when None).
    """
    state = _State(predictor, settings or ServerSettings())
    app = FastAPI(title="pixclass", lifespan=state.lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.pixclass = state
    app.add_middleware(_MetricsMiddleware, metrics=state.metrics)
    _add_error_handlers(app, state)
    auth = Depends(state.require_key)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> dict:
        state.require_ready()
        return {"status": "ready"}

    @app.get("/info", dependencies=[auth])
    async def info() -> dict:
        predictor = state.require_ready()
        return {**predictor.info(), "server": state.limits()}

    @app.get("/metrics", dependencies=[auth])
    async def metrics() -> Response:
        body, content_type = state.metrics.exposition()
        return Response(body, media_type=content_type)

    @app.post("/predict", dependencies=[auth])
    async def predict(request: Request, top_k: int | None = Query(None, ge=1, le=1000)) -> dict:
        return await state.predict(request, top_k)

    return app


def app_from_environ() -> FastAPI:
    """The app of one uvicorn worker process: model and settings from the environment (`--workers N`)."""
    from pixclass.export.predictor import load_model

    model, settings = settings_from_environ()
    return create_app(lambda: load_model(model), settings)


class ApiError(Exception):
    """An error answer: HTTP `status`, one-line `message`, metrics `kind`, the `file` concerned."""

    def __init__(self, status: int, message: str, kind: str, file: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.file, self.headers = status, message, kind, file, headers


class _State:
    """One app's model, settings, metrics, thread pools and readiness."""

    def __init__(self, predictor: Any, settings: ServerSettings):
        self.settings, self.metrics = settings, ServerMetrics()
        self._source = predictor
        self.predictor: Any = None  # set once loaded and warmed up
        self.load_error: str | None = None
        self.decode_pool: ThreadPoolExecutor | None = None
        self.inference: Inference | None = None
        self._key = settings.api_key.encode() if settings.api_key else None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready_task: asyncio.Future | None = None

    @asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        self._loop = asyncio.get_running_loop()
        self.decode_pool = ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="pixclass-decode")
        threading.Thread(target=self._load, name="pixclass-load", daemon=True).start()
        try:
            yield
        finally:
            self.metrics.ready.set(0)
            if self.inference:
                await self.inference.stop()
            self.decode_pool.shutdown(wait=False, cancel_futures=True)

    def _load(self) -> None:
        try:
            predictor = self._source if hasattr(self._source, "predict_batch") else self._source()
            predictor.warm_up()
        except Exception as err:  # the server keeps answering /health; /ready says why it is not ready
            self.load_error = str(err).splitlines()[0] if str(err) else type(err).__name__
            log.error("pixclass: the model failed to load: %s", self.load_error)
            return
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(self._became_ready, predictor)
        except RuntimeError:  # the server stopped while the model was loading
            pass

    async def _start_inference(self, predictor: Any) -> None:
        s, observe = self.settings, self.metrics.observe_batch
        inference: Inference = (MicroBatcher(predictor.predict_arrays, s.max_batch, s.max_wait_ms, observe)
                                if s.micro_batching else DirectInference(predictor.predict_arrays, on_batch=observe))
        await inference.start()
        self.inference, self.predictor = inference, predictor
        self.metrics.ready.set(1)

    def _became_ready(self, predictor: Any) -> None:
        self._ready_task = asyncio.ensure_future(self._start_inference(predictor))

    def require_ready(self) -> Any:
        if self.predictor is None:
            why = f"the model failed to load: {self.load_error}" if self.load_error else "the model is still loading"
            raise ApiError(503, f"not ready: {why}", "not_ready", headers={"Retry-After": "1"})
        return self.predictor

    def require_key(self, request: Request) -> None:
        if self._key is None:
            return
        given = request.headers.get("x-api-key", "")
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            given = token.strip()
        if not hmac.compare_digest(given.encode(), self._key):
            raise ApiError(401, "missing or wrong API key: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
                           "unauthorized", headers={"WWW-Authenticate": "Bearer"})

    def limits(self) -> dict:
        s = self.settings
        return {"max_files": s.max_files, "max_file_bytes": s.max_file_bytes,
                "max_request_bytes": s.max_request_bytes, "timeout_s": s.timeout_s,
                "micro_batching": s.micro_batching, "max_batch": s.max_batch}

    async def predict(self, request: Request, top_k: int | None) -> dict:
        predictor = self.require_ready()
        started = time.perf_counter()
        phase = ["upload"]
        try:
            uploads, preds = await asyncio.wait_for(self._predict(request, predictor, phase), self.settings.timeout_s)
        except asyncio.TimeoutError:
            t = f"{self.settings.timeout_s:g} s"
            if phase[0] == "upload":
                raise ApiError(408, f"the upload did not arrive within {t}", "timeout") from None
            raise ApiError(503, f"no answer within {t}: the server is overloaded; try again later", "timeout",
                           headers={"Retry-After": "5"}) from None
        k = min(top_k or DEFAULT_TOP_K, len(predictor.classes))
        return {"predictions": [{"file": u.name, **p.to_dict(k)} for u, p in zip(uploads, preds)],
                "model": self.model_summary(), "ms": round((time.perf_counter() - started) * 1000, 1)}

    async def _predict(self, request: Request, predictor: Any, phase: list[str]) -> tuple[list[Upload], list]:
        try:
            uploads = await read_uploads(request.headers, request.stream(), self.settings)
        except ClientDisconnect:
            raise ApiError(400, "the client closed the connection during the upload", "bad_request") from None
        phase[0] = "decode"
        loop = asyncio.get_running_loop()
        decoded = await asyncio.gather(  # decoded and preprocessed here, so inference only runs the model
            *(loop.run_in_executor(self.decode_pool, predictor.array, u.data, u.name) for u in uploads),
            return_exceptions=True)
        for u, img in zip(uploads, decoded):  # the first unreadable file in upload order is reported
            if isinstance(img, ImageReadError):
                status, kind = (415, "not_an_image") if img.reason.startswith("not an image") else (422, "unreadable")
                raise ApiError(status, f"cannot read '{u.name}': {img.reason}", kind, u.name)
            if isinstance(img, BaseException):
                raise img
        phase[0] = "predict"
        assert self.inference is not None
        return uploads, await self.inference.predict(decoded)

    def model_summary(self) -> dict:
        p = self.predictor
        return {"arch": p.meta.get("arch"), "task": p.task, "classes": len(p.classes), "runtime": p.runtime}


def _add_error_handlers(app: FastAPI, state: _State) -> None:
    def answer(status: int, message: str, kind: str, file: str | None = None,
               headers: dict[str, str] | None = None) -> JSONResponse:
        state.metrics.errors.labels(kind).inc()
        return JSONResponse({"error": message, "file": file}, status_code=status, headers=headers)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, err: ApiError) -> JSONResponse:
        return answer(err.status, err.message, err.kind, err.file, err.headers)

    @app.exception_handler(UploadRejected)
    async def rejected(request: Request, err: UploadRejected) -> JSONResponse:
        # The rest of an over-limit body is not read: the connection closes after this answer.
        return answer(err.status, err.message, err.kind, err.file, {"Connection": "close"})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        kind = "not_found" if err.status_code in (404, 405) else "bad_request"
        return answer(err.status_code, str(err.detail), kind, headers=getattr(err, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        first = err.errors()[0] if err.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "query")
        return answer(422, f"bad parameter {where}: {first.get('msg', 'invalid')}", "bad_request")

    @app.exception_handler(PixclassError)
    async def pixclass_error(request: Request, err: PixclassError) -> JSONResponse:
        return answer(500, str(err).splitlines()[0], "internal")

    @app.exception_handler(Exception)
    async def internal(request: Request, err: Exception) -> JSONResponse:
        log.exception("pixclass: internal error answering %s", request.url.path)
        return answer(500, f"internal error ({type(err).__name__}); see the server log", "internal")


class _MetricsMiddleware:
    """Counts every request by route and status and times it (pure ASGI: streams pass through)."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), [500]

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.observe_request(scope["path"], status[0], time.perf_counter() - started)
