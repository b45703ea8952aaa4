"""The UI's ASGI application: pages, the ``/api/`` JSON they are drawn from, static assets.

Owns routing, turning the library's errors into pages and JSON errors (an unknown id is a 404
naming it; a store that cannot be opened is a 503 page saying why, tried again on the next
request), and starting replays (``POST``, behind :mod:`._guard`). Every page is a small HTML
shell that ``static/app.js`` fills from the ``/api/`` answers :mod:`._views` builds, so what a
page shows is exactly what the API gives. Reads go through the store's public methods.

Endpoint functions are plain ``def``: Starlette runs them in its thread pool, so a slow read or
a replay never blocks the event loop.
"""

from __future__ import annotations

import html
import os
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from workbench.exceptions import (
    ConfigError,
    DiffError,
    ExecutionNotFoundError,
    ProfileNotFoundError,
    ReplayError,
    ReplayMismatchError,
    StoreError,
    WorkbenchError,
)
from workbench.records import Execution
from workbench.store import Store, resolve_store_path
from workbench.ui import _views as views
from workbench.ui._guard import LOOPBACK_HOSTS, Guard

__all__ = ["API", "create_app"]

STATIC = Path(__file__).with_name("static")
#: Completed runs kept decoded between requests (a click on a step reads the run again).
_CACHED_RUNS = 4

#: The JSON endpoints, as ``GET /api`` lists them (docs/ui.md describes each answer).
API: tuple[tuple[str, str, str], ...] = (
    ("GET", "/api/runs", "a page of the run list: filters, sort, offset, limit; total"),
    ("GET", "/api/facets", "the pipelines and users the run list can be filtered by"),
    ("GET", "/api/runs/{id}", "a run: its fields, trace rows, states, logs, profiles, replays"),
    ("GET", "/api/runs/{id}/steps/{step_id}/{occurrence}", "a step: parameters, result, error"),
    ("GET", "/api/runs/{id}/calls/{call_id}", "a model call: chat, response, stream, usage"),
    ("POST", "/api/runs/{id}/replay", "start a replay (model, prompt override, from step)"),
    ("GET", "/api/diff?a=ID&b=ID", "the diff engine's records of two runs, steps aligned"),
    ("GET", "/api/costs?days=N&by=model|pipeline|user", "daily cost by group, and budgets"),
    ("GET", "/api/profiles/{id}", "a profile's summary, top functions and artifacts"),
    ("GET", "/api/profiles/{id}/artifact?role=main", "a profile's file, served as it is"),
    ("GET", "/api/experiments", "the experiments the store holds"),
)


class _NotFound(WorkbenchError):
    """Something the URL names is not in the store (the id is in the message)."""


def _json(value: Any, status: int = 200) -> Response:
    body = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY)
    return Response(body, status_code=status, media_type="application/json")


def _experiment(store: Any, experiment: Any) -> dict[str, Any]:
    """An experiment as the page shows it: its record, and its runs with the changed ones
    first, costliest first (the cost after the change), each with the link to its diff."""
    found = store.experiment_runs(experiment.id)
    found.sort(key=lambda r: (not r.changed, -(r.cost_after or 0.0)))
    return {
        "id": experiment.id,
        "name": experiment.name,
        "pipeline_id": experiment.pipeline_id,
        "status": experiment.status,
        "engine": experiment.engine,
        "modifications": experiment.modifications,
        "started_at": experiment.started_at,
        "runs": len(found),
        "changed": sum(r.changed for r in found),
        "failed": sum(r.status == "failed" for r in found),
        "cost_before": sum(r.cost_before or 0.0 for r in found),
        "cost_after": sum(r.cost_after or 0.0 for r in found),
        "run_list": [
            {
                "original_id": r.original_id,
                "replay_id": r.replay_id,
                "status": r.status,
                "changed": r.changed,
                "first_divergent_step": r.first_divergent_step,
                "cost_before": r.cost_before,
                "cost_after": r.cost_after,
                "error": r.error,
                "diff": f"/diff?a={r.original_id}&b={r.replay_id}" if r.replay_id else None,
            }
            for r in found
        ],
    }


def _page(title: str, page: str, **data: str) -> HTMLResponse:
    attributes = "".join(
        f' data-{name.replace("_", "-")}="{html.escape(value)}"' for name, value in data.items()
    )
    return HTMLResponse(_SHELL.format(title=html.escape(title), page=page, data=attributes))


def _message_page(status: int, title: str, message: str) -> HTMLResponse:
    body = _SHELL.format(title=html.escape(title), page="message", data="").replace(
        '<main id="app"',
        f'<main id="message"><h1>{html.escape(title)}</h1>'
        f'<p class="message">{html.escape(message)}</p>'
        f'<p><a href="/runs">Back to the runs</a></p></main><main hidden id="app"',
    )
    return HTMLResponse(body, status_code=status)


_SHELL = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · workbench</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/app.css">
</head><body>
<nav class="top"><a class="brand" href="/runs">workbench</a>
<a href="/runs">Runs</a><a href="/costs">Costs</a><a href="/experiments">Experiments</a></nav>
<main id="app" data-page="{page}"{data}></main>
<script src="/static/app.js"></script>
</body></html>
"""


class _Runs:
    """The app's store, opened on first use, and a small cache of decoded completed runs."""

    def __init__(self, store: Store | str | os.PathLike[str] | None) -> None:
        self._given = store if isinstance(store, Store) else None
        self.path = store.path if isinstance(store, Store) else resolve_store_path(store)
        self._store: Store | None = self._given
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, Execution] = OrderedDict()

    @property
    def store(self) -> Store:
        with self._lock:
            if self._store is None:
                if not self.path.exists():
                    raise StoreError(
                        f"no store at {self.path}; record a run first (try `workbench demo`), "
                        f"or start the UI with --db pointing at an existing store"
                    )
                self._store = Store(self.path)
            return self._store

    def execution(self, execution_id: str) -> Execution:
        with self._lock:
            cached = self._cache.get(execution_id)
            if cached is not None:
                self._cache.move_to_end(execution_id)
                return cached
        run = self.store.get_execution(execution_id)
        if run.status not in ("running",):
            with self._lock:
                self._cache[execution_id] = run
                while len(self._cache) > _CACHED_RUNS:
                    self._cache.popitem(last=False)
        return run

    def overview(self, execution_id: str) -> Execution:
        """The run without its model calls' payloads, unless it is decoded whole already:
        the run page draws calls from ``call_timings`` (a click on one reads it all)."""
        with self._lock:
            cached = self._cache.get(execution_id)
        if cached is not None:
            return cached
        return self.store.get_execution(execution_id, model_calls=False)

    def close(self) -> None:
        with self._lock:
            if self._store is not None and self._given is None:
                self._store.close()
            self._store = self._given
            self._cache.clear()


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api")


def _error_response(request: Request, status: int, kind: str, message: str) -> Response:
    if _wants_html(request):
        titles = {404: "Not found", 503: "The store cannot be opened", 400: "Bad request"}
        return _message_page(status, titles.get(status, "Error"), message)
    return _json({"error": {"type": kind, "message": " ".join(message.split())}}, status)


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{name}={text!r} is not a whole number") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={value} is not between {low} and {high}")
    return value


def _text(request: Request, name: str) -> str | None:
    value = request.query_params.get(name, "").strip()
    return value or None


def create_app(
    store: Store | str | os.PathLike[str] | None = None,
    *,
    allowed_hosts: tuple[str, ...] | None = tuple(LOOPBACK_HOSTS),
) -> Callable[..., Any]:
    """The UI as an ASGI application over ``store`` (a :class:`Store`, which the app never
    closes, or a path opened on first use and closed at shutdown).

    ``allowed_hosts`` are the ``Host`` names it answers to (loopback by default; ``None`` for
    any, as ``workbench ui --host`` does).
    """
    runs = _Runs(store)

    def run_or_404(execution_id: str) -> Execution:
        return runs.execution(execution_id)

    # -- pages ----------------------------------------------------------------------------

    def home(request: Request) -> Response:
        return RedirectResponse("/runs", status_code=307)

    def runs_page(request: Request) -> Response:
        runs.store  # noqa: B018 - a store that cannot be opened is a page saying so
        return _page("Runs", "runs")

    def run_page(request: Request) -> Response:
        execution_id = request.path_params["id"]
        if not runs.store.has_execution(execution_id):
            raise ExecutionNotFoundError(
                f"no run {execution_id!r} in store {runs.path}; the recorded runs are listed "
                f"at /runs"
            )
        return _page(f"Run {execution_id}", "run", run=execution_id)

    def diff_page(request: Request) -> Response:
        a, b = _text(request, "a"), _text(request, "b")
        if a is None or b is None:
            raise ConfigError("a diff needs two runs: /diff?a=RUN_ID&b=RUN_ID")
        for execution_id in (a, b):
            if not runs.store.has_execution(execution_id):
                raise ExecutionNotFoundError(
                    f"no run {execution_id!r} in store {runs.path}; the recorded runs are "
                    f"listed at /runs"
                )
        return _page(f"Diff {a} → {b}", "diff", a=a, b=b)

    def costs_page(request: Request) -> Response:
        runs.store  # noqa: B018
        return _page("Costs", "costs")

    def profile_page(request: Request) -> Response:
        profile = runs.store.get_profile(request.path_params["id"])
        return _page(f"Profile {profile.id}", "profile", profile=profile.id)

    def experiments_page(request: Request) -> Response:
        runs.store  # noqa: B018
        return _page("Experiments", "experiments")

    # -- api ------------------------------------------------------------------------------

    def api_index(request: Request) -> Response:
        return _json({"endpoints": [{"method": m, "path": p, "what": w} for m, p, w in API]})

    def api_runs(request: Request) -> Response:
        order = request.query_params.get("order", "desc")
        if order not in ("asc", "desc"):
            raise ConfigError(f"order={order!r} is not asc or desc")
        page = runs.store.run_page(
            pipeline_id=_text(request, "pipeline"),
            status=_text(request, "status"),
            user_id=_text(request, "user"),
            since=_text(request, "since"),
            until=_text(request, "until"),
            text=_text(request, "q"),
            sort=request.query_params.get("sort") or "started_at",
            descending=order == "desc",
            offset=_int(request, "offset", 0, 0, 10**9),
            limit=_int(request, "limit", 50, 1, 500),
        )
        return _json(views.run_page_json(page))

    def api_facets(request: Request) -> Response:
        facets = runs.store.run_facets()
        return _json(
            {
                "pipelines": list(facets.pipelines),
                "users": list(facets.users),
                "statuses": ["running", "completed", "failed", "interrupted"],
            }
        )

    def api_run(request: Request) -> Response:
        run = runs.overview(request.path_params["id"])
        replays = [e.id for e in runs.store.list_executions(replay_of=run.id, limit=50)]
        calls = runs.store.call_timings(run.id)
        return _json(views.run_json(run, calls, replays))

    def api_step(request: Request) -> Response:
        run = run_or_404(request.path_params["id"])
        step_id = request.path_params["step_id"]
        try:
            occurrence = int(request.path_params["occurrence"])
        except ValueError:
            occurrence = -1
        for step in run.steps:
            if step.step_id == step_id and step.occurrence == occurrence:
                return _json(views.step_json(run, step))
        raise _NotFound(
            f"run {run.id!r} has no step {step_id!r} occurrence "
            f"{request.path_params['occurrence']}; its steps are "
            f"{', '.join(sorted({s.step_id for s in run.steps})) or 'none'}"
        )

    def api_call(request: Request) -> Response:
        run = run_or_404(request.path_params["id"])
        call_id = request.path_params["call_id"]
        for call in run.model_calls:
            if call.id == call_id:
                return _json(views.call_json(run, call))
        raise _NotFound(f"run {run.id!r} has no model call {call_id!r}")

    async def api_replay(request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        execution_id = request.path_params["id"]
        try:
            payload = await request.json() if await request.body() else {}
        except ValueError:
            raise ConfigError("the replay request's body is not JSON") from None
        if not isinstance(payload, dict):
            raise ConfigError("the replay request's body must be a JSON object")
        return await run_in_threadpool(_replay, execution_id, payload)

    def _replay(execution_id: str, payload: dict[str, Any]) -> Response:
        from workbench.debugging import RequestReplay

        modifications, on_miss = replay_request(payload)
        if not runs.store.has_execution(execution_id):
            raise ExecutionNotFoundError(f"no run {execution_id!r} in store {runs.path}")
        try:
            result = RequestReplay(runs.store).replay_execution(
                execution_id, modifications=modifications, on_miss=on_miss
            )
        except ReplayMismatchError as exc:  # recorded, as a failed replay: open it
            return _json(
                {
                    "execution_id": exc.execution_id,
                    "replay_of": execution_id,
                    "status": "failed",
                    "error": " ".join(str(exc).split())[:2000],
                }
            )
        except ReplayError as exc:
            if exc.execution_id is None:
                raise
            return _json(
                {
                    "execution_id": exc.execution_id,
                    "replay_of": execution_id,
                    "status": "failed",
                    "error": " ".join(str(exc).split())[:2000],
                }
            )
        return _json(
            {
                "execution_id": result.execution_id,
                "replay_of": result.replay_of,
                "status": result.status,
                "error": None if result.error is None else str(result.error),
                "mismatches": len(result.mismatches),
            }
        )

    def api_diff(request: Request) -> Response:
        from workbench.diff import compare_executions

        a, b = _text(request, "a"), _text(request, "b")
        if a is None or b is None:
            raise ConfigError("a diff needs two runs: /api/diff?a=RUN_ID&b=RUN_ID")
        diff = compare_executions(run_or_404(a), run_or_404(b))
        return _json(views.diff_json(diff))

    def api_costs(request: Request) -> Response:
        from workbench.config import load_config

        section = load_config().cost_tracking
        timezone = section.timezone
        by = request.query_params.get("by") or "model"
        days = _int(request, "days", 30, 1, 366)
        store = runs.store
        costs = store.daily_costs(days=days, by=by, timezone=timezone)
        day_start, month_start = views.period_starts(time.time(), timezone)
        limits = section.budgets
        spend = {
            "daily": store.spend_since(day_start)[""],
            "monthly": store.spend_since(month_start)[""],
        }
        per_user = store.spend_since(day_start, by_user=True) if limits.per_user_limit else {}
        return _json(
            {
                **views.costs_json(costs),
                "budgets": views.budgets_json(
                    {
                        "daily_limit": limits.daily_limit,
                        "monthly_limit": limits.monthly_limit,
                        "per_user_limit": limits.per_user_limit,
                    },
                    spend,
                    per_user,
                    timezone,
                ),
            }
        )

    def api_profile(request: Request) -> Response:
        return _json(views.profile_json(runs.store.get_profile(request.path_params["id"])))

    def api_artifact(request: Request) -> Response:
        profile = runs.store.get_profile(request.path_params["id"])
        role = request.query_params.get("role", "main")
        path = views.artifact_path(profile, role)
        if path is None:
            raise _NotFound(f"profile {profile.id!r} has no {role!r} artifact")
        if not path.is_file():
            raise _NotFound(
                f"profile {profile.id!r}'s {role} artifact {path} is not on this machine any "
                f"more (profiles are files beside the store; it was moved or deleted)"
            )
        media = {
            "speedscope": "application/json",
            "html": "text/html; charset=utf-8",
        }.get(views.artifact_format(str(path)), "application/octet-stream")
        return FileResponse(path, media_type=media)

    def api_experiments(request: Request) -> Response:
        # Each with its runs, changed ones first and costliest first, each opening its diff.
        return _json(
            {"experiments": [_experiment(runs.store, e) for e in runs.store.list_experiments()]}
        )

    # -- errors ---------------------------------------------------------------------------

    def on_workbench_error(request: Request, exc: Exception) -> Response:
        if isinstance(exc, ExecutionNotFoundError | ProfileNotFoundError | _NotFound):
            message = exc.args[0] if exc.args else str(exc)
            return _error_response(request, 404, type(exc).__name__, str(message))
        if isinstance(exc, StoreError):
            runs.close()  # tried again on the next request (the file may be fixed by then)
            return _error_response(request, 503, type(exc).__name__, str(exc))
        status = 400 if isinstance(exc, ConfigError | DiffError) else 500
        if isinstance(exc, ReplayError):
            status = 409
        return _error_response(request, status, type(exc).__name__, str(exc))

    def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        message = f"nothing at {request.url.path}" if exc.status_code == 404 else str(exc.detail)
        return _error_response(request, exc.status_code, "HTTPError", message)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            runs.close()

    routes = [
        Route("/", home),
        Route("/runs", runs_page),
        Route("/runs/{id}", run_page),
        Route("/diff", diff_page),
        Route("/costs", costs_page),
        Route("/profiles/{id}", profile_page),
        Route("/experiments", experiments_page),
        Route("/api", api_index),
        Route("/api/runs", api_runs),
        Route("/api/facets", api_facets),
        Route("/api/runs/{id}", api_run),
        Route("/api/runs/{id}/steps/{step_id}/{occurrence}", api_step),
        Route("/api/runs/{id}/calls/{call_id}", api_call),
        Route("/api/runs/{id}/replay", api_replay, methods=["POST"]),
        Route("/api/diff", api_diff),
        Route("/api/costs", api_costs),
        Route("/api/profiles/{id}", api_profile),
        Route("/api/profiles/{id}/artifact", api_artifact),
        Route("/api/experiments", api_experiments),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={WorkbenchError: on_workbench_error, HTTPException: on_http_error},
        lifespan=lifespan,
    )
    app.state.runs = runs
    return Guard(app, allowed_hosts=allowed_hosts)


def replay_request(payload: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The modifications and ``on_miss`` of a replay asked for by the page's form.

    ``{"model": "gpt-4o", "prompt_step": "draft", "system": "...", "from_step": "draft",
    "use_test_models": true, "on_miss": "test-model"}``; every key optional.
    """
    from workbench.replay._engine import ON_MISS

    allowed = {"model", "prompt_step", "system", "message_index", "message", "from_step",
               "use_test_models", "on_miss"}  # fmt: skip
    unknown = sorted(set(payload) - allowed)
    if unknown:
        raise ConfigError(
            f"a replay request does not take {', '.join(unknown)}; it takes "
            f"{', '.join(sorted(allowed))}"
        )
    modifications: dict[str, Any] = {}
    if payload.get("model"):
        modifications["model"] = str(payload["model"])
    if payload.get("from_step"):
        modifications["from_step"] = str(payload["from_step"])
    if payload.get("use_test_models"):
        modifications["use_test_models"] = True
    step = payload.get("prompt_step")
    override: dict[str, Any] = {}
    if payload.get("system"):
        override["system"] = str(payload["system"])
    if payload.get("message"):
        try:
            index = int(payload.get("message_index", 0))
        except (TypeError, ValueError):
            raise ConfigError(
                "message_index must be a whole number (the message's position)"
            ) from None
        override["messages"] = {index: str(payload["message"])}
    if override:
        if not step:
            raise ConfigError(
                "a prompt override needs prompt_step: the step whose calls it changes"
            )
        modifications["prompt_overrides"] = {str(step): override}
    on_miss = str(payload.get("on_miss") or "error")
    if on_miss not in ON_MISS:
        raise ConfigError(f"on_miss {on_miss!r} is not one of {', '.join(ON_MISS)}")
    return modifications, on_miss
