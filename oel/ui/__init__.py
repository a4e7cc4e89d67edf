"""`oel ui`: a local web page over one run's memory, episodes and checkpoints.

It shows how experience became weights: an item leads to the episodes it came from, replayed turn by turn,
and to the checkpoints that absorbed it, with their evaluations and the other items absorbed with them.
Started with `--allow-writes`, it can also restore, archive and forget items, through the same code as the
CLI (`oel memory restore|prune|forget`) and with the memory's writer lock.

A small server-rendered Starlette app with Jinja2 templates: no JavaScript, no build step, nothing fetched
at run time. Everything shown comes from games, models or imports and is untrusted: the templates escape it
(autoescaping), control characters are shown as visible escapes, and the Content-Security-Policy forbids
scripts and any other origin, so even a missed escape could not run anything.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import urlencode

import jinja2

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from consolidation import lifecycle
from consolidation.report import TITLE, read_rounds, round_cells, round_columns
from memory.store import KINDS, STATUSES
from oel.errors import OELError
from oel.rundir import RunDir
from oel.ui.run import RunReader, visible

PAGE_SIZE = 50
ACTIONS = {"restore": "Make this item active again (as `oel memory restore ID`).",
           "archive": "Take this item out of use; it stays stored and can be restored (as `oel memory prune ID`).",
           "forget": "Delete this item, and taint every checkpoint trained on it: the newest untainted checkpoint "
                     "takes over, and the other items those checkpoints absorbed become active again (as "
                     "`oel memory forget ID`). This cannot be undone."}
SECURITY_HEADERS = {"Content-Security-Policy": "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; "
                                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
                    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def check_run_dir(run_dir: str | Path) -> Path:
    """The run directory the page serves, or a one-line error saying what is wrong with it."""
    path = Path(run_dir)
    if not path.is_dir():
        raise OELError(f"no run directory at {path}: give --run-dir the directory of an `oel loop` or `oel play` run")
    if not os.access(path, os.R_OK | os.X_OK):
        raise OELError(f"cannot read run directory {path}: permission denied")
    if not RunDir(path).is_run():
        raise OELError(f"{path} is not a run directory (it has no {RunDir(path).config.name}): "
                       "run `oel loop --run-dir DIR` first")
    return path


def create_app(run_dir: str | Path, allow_writes: bool = False) -> Starlette:
    """The page's app for the run at `run_dir` (checked first: a one-line error if it cannot be served)."""
    reader = RunReader(check_run_dir(run_dir))
    token = secrets.token_urlsafe(16)  # every write form carries it: another site cannot post to this server
    templates = Jinja2Templates(env=jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                                                       autoescape=True))  # every template, whatever its name
    templates.env.filters["visible"] = visible

    def page(request: Request, name: str, **context) -> Response:
        response = templates.TemplateResponse(request, name, {"run": str(reader.run_dir), "writes": allow_writes,
                                                              "message": request.query_params.get("done", ""),
                                                              **context})
        response.headers.update(SECURITY_HEADERS)
        return response

    def number(request: Request, name: str) -> int | None:
        value = request.query_params.get(name, "")
        if not value:
            return None
        if not value.lstrip("-").isdigit():
            raise HTTPException(400, f"{name} must be a whole number")
        return int(value)

    def memory_view(request: Request) -> Response:
        q = request.query_params
        status, env, kind, text = q.get("status", "active"), q.get("env") or None, q.get("kind") or None, q.get("q", "")
        if status not in (*STATUSES, "all") or (kind and kind not in KINDS):
            raise HTTPException(400, "unknown status or kind")
        round_, page_no = number(request, "round"), max(1, number(request, "page") or 1)
        memory = reader.memory()
        try:
            if text:  # semantic search with the memory's own retrieval
                found = memory.search(text, k=PAGE_SIZE, status=status, env=env, round=round_, kind=kind)
                items, distances, more = [i for i, _ in found], [d for _, d in found], False
            else:
                items, more = memory.page(status, env, round_, kind, offset=(page_no - 1) * PAGE_SIZE, limit=PAGE_SIZE)
                distances = []
        except OELError as err:
            raise HTTPException(400, str(err)) from None
        filters = {k: v for k, v in q.items() if k != "page" and v}
        return page(request, "memory.html", items=items, distances=distances, more=more, page_no=page_no,
                    filters=filters, statuses=STATUSES, kinds=KINDS, envs=reader.envs(),
                    link=lambda **changes: "/memory?" + urlencode({**filters, **changes}))

    def item_view(request: Request) -> Response:
        item_id = request.path_params["item_id"]
        try:
            item = reader.memory().get(item_id)
        except OELError:
            raise HTTPException(404, f"no memory item {item_id!r} (forgotten, or never in this run)") from None
        episodes = reader.episodes_by_id()
        absorbed = [m for m in reader.manifests() if item.id in m["knowledge_ids"]]
        return page(request, "item.html", item=item, sources=[(s, s in episodes) for s in item.sources],
                    absorbed=absorbed, actions=ACTIONS)

    def episodes_view(request: Request) -> Response:
        q = request.query_params
        round_ = number(request, "round")
        episodes = reader.episodes()
        shown = [e for e in episodes
                 if (round_ is None or e["round"] == round_) and q.get("game", "") in Path(e["game"]).name
                 and q.get("outcome") in (None, "", e["outcome"]) and q.get("policy") in (None, "", e["policy"])]
        return page(request, "episodes.html", episodes=shown, filters=dict(q),
                    outcomes=sorted({e["outcome"] for e in episodes}), policies=sorted({e["policy"] for e in episodes}))

    def episode_view(request: Request) -> Response:
        episode = reader.episodes_by_id().get(request.path_params["episode_id"])
        if episode is None:
            raise HTTPException(404, "no such episode in this run's logs")
        items = reader.items_from(episode["id"])
        return page(request, "episode.html", episode=episode, observations=reader.observations(episode), items=items)

    def checkpoints_view(request: Request) -> Response:
        rows = read_rounds(reader.run_dir)
        columns = round_columns(rows)
        return page(request, "checkpoints.html", manifests=reader.manifests(), title=TITLE,
                    columns=[title for _, title in columns], rows=[round_cells(r, columns) for r in rows],
                    curve=bool(rows), in_force=reader.registry().current())

    def checkpoint_view(request: Request) -> Response:
        try:
            manifest = reader.registry().manifest(request.path_params["version"])
        except OELError as err:
            raise HTTPException(404, str(err)) from None
        memory = reader.memory()
        items = [(i, reader.find_item(memory, i)) for i in manifest["knowledge_ids"]]
        return page(request, "checkpoint.html", m=manifest, items=items,
                    log=manifest.get("training", {}).get("log", []))

    def learning_curve(request: Request) -> Response:
        png = reader.learning_curve()
        if png is None:
            raise HTTPException(404, "no rounds recorded yet")
        return Response(png, media_type="image/png", headers=SECURITY_HEADERS)

    async def item_action(request: Request) -> Response:
        action, item_id = request.path_params["action"], request.path_params["item_id"]
        if not allow_writes:
            raise HTTPException(403, "this page is read-only: start it with `oel ui --allow-writes` to change the memory")
        if action not in ACTIONS:
            raise HTTPException(404, f"unknown action {action!r}")
        if request.method == "GET":  # every write asks first
            return page(request, "confirm.html", action=action, item_id=item_id, explain=ACTIONS[action], token=token)
        form = await request.form()
        if not secrets.compare_digest(str(form.get("token", "")), token):
            raise HTTPException(403, "this form is stale or did not come from this page: open it again")
        return await run_in_threadpool(write, action, item_id, str(form.get("reason", "")))

    def write(action: str, item_id: str, reason: str) -> Response:
        try:
            if action == "forget":
                done = lifecycle.forget_in_run(reader.run_dir, [item_id], reason or "forgotten in the inspector page")
                message = (f"forgot {item_id}; tainted: {', '.join(done['tainted']) or 'none'}; "
                           f"{len(done['restored'])} other items active again; "
                           f"in force: {done['in_force'] or 'the base model'}")
                target = "/memory"
            else:
                with lifecycle.open_run_memory(reader.run_dir, write=True) as memory:
                    (memory.unarchive if action == "restore" else memory.archive)([item_id])
                message, target = f"{action}d {item_id}", f"/items/{item_id}"
        except OELError as err:
            raise HTTPException(409, str(err)) from None
        reader.changed()
        return RedirectResponse(f"{target}?{urlencode({'done': message})}", status_code=303)

    async def error(request: Request, exc: HTTPException) -> Response:
        response = templates.TemplateResponse(request, "error.html", {"run": str(reader.run_dir), "writes": allow_writes,
                                                                      "message": "", "detail": exc.detail},
                                              status_code=exc.status_code)
        response.headers.update(SECURITY_HEADERS)
        return response

    routes = [Route("/", lambda request: RedirectResponse("/memory")),
              Route("/memory", memory_view), Route("/items/{item_id}", item_view),
              Route("/items/{item_id}/{action}", item_action, methods=["GET", "POST"]),
              Route("/episodes", episodes_view), Route("/episodes/{episode_id}", episode_view),
              Route("/checkpoints", checkpoints_view), Route("/checkpoints/{version}", checkpoint_view),
              Route("/learning_curve.png", learning_curve)]
    return Starlette(routes=routes, exception_handlers={HTTPException: error})


def serve(run_dir: str | Path, host: str = "127.0.0.1", port: int = 8765, allow_writes: bool = False) -> None:
    """Serve the page until Ctrl-C."""
    import socket

    import uvicorn

    app = create_app(run_dir, allow_writes)
    try:  # uvicorn logs a bind failure and exits; say it in one line instead
        with socket.create_server((host, port)):
            pass
    except OSError as err:
        raise OELError(f"cannot listen on {host}:{port}: {err.strerror or err} (another --port?)") from None
    print(f"oel ui: http://{host}:{port}/ ({'writes allowed' if allow_writes else 'read-only'}; Ctrl-C stops it)")
    uvicorn.run(app, host=host, port=port, log_level="warning")
