"""The moderation endpoint: an ASGI app (FastAPI) around one model and one guard.

==========================  ======================================================================
``POST /v1/moderations``    OpenAI's moderation shape: ``{"input": ...}`` in, ``{"id", "model",
                            "results": [{"flagged", "categories", "category_scores",
                            "category_applied_input_types"}]}`` out, one category: ``malicious``
``POST /classify``          the same input; ``{"results": [Verdict.to_dict(), ...]}``: score,
                            threshold, each head's share of the logit, model identity, guard hash
``GET /health``             the model, the guard's hash, the queue
==========================  ======================================================================

Requests are parsed and checked (``inputs``) before they are queued; concurrent requests are judged
together (``batcher``). A bad request gets a 4xx with a message that says what to send; a full queue gets
503 with ``Retry-After``; nothing a client sends produces a traceback, and the server goes on serving.
Every request is logged as one JSON line (logger ``sahs_lens.serve``): path, status, items, flagged,
milliseconds.

(No ``from __future__ import annotations`` here: FastAPI reads the endpoints' ``Request`` annotations at
definition time, and ``fastapi`` is imported inside ``create_app`` so that it stays an optional extra.)
"""

import asyncio
import json
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

from sahs_lens.serve.batcher import Batcher, QueueFull
from sahs_lens.serve.inputs import BadRequest, Item, Limits, parse_body

if TYPE_CHECKING:
    from fastapi import FastAPI

    from model_adapters import HookedVLM
    from sahs_lens.guard import SafetyHeadGuard, Verdict

__all__ = ["CATEGORY", "create_app"]

CATEGORY = "malicious"
"""The one moderation category a safety-head guard judges: a request the model should refuse."""

LOG = logging.getLogger("sahs_lens.serve")


def create_app(
    model: "HookedVLM",
    guard: "SafetyHeadGuard",
    *,
    limits: Limits | None = None,
    max_batch: int = 16,
    max_wait_s: float = 0.005,
    max_queue: int = 256,
) -> "FastAPI":
    """The app; ``app.state.batcher`` is its batcher (closed when the app shuts down)."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    from sahs_lens.guard import guard_sha256

    guard.check_model(model)  # refuse a guard of another model before serving anything
    limits = limits or Limits()
    if limits.max_items > max_queue:
        raise ValueError(
            f"max_items ({limits.max_items}) is larger than max_queue ({max_queue}): a request that large could "
            "never be queued; raise the queue or lower the items per request"
        )
    images = bool(model.family.takes_images)
    digest = guard_sha256(guard)

    def judge(items: list[Item]) -> "list[Verdict]":
        return guard.classify(
            model, [i.prompt for i in items], [i.image for i in items], batch_size=max_batch
        )

    batcher: "Batcher[Item, Verdict]" = Batcher(
        judge, max_batch=max_batch, max_wait_s=max_wait_s, max_queue=max_queue
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
        yield
        batcher.close()

    app = FastAPI(title="sahs-lens moderation", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.batcher = batcher

    async def verdicts(request: Request) -> "tuple[list[Item], list[Verdict]]":
        items = parse_body(await _body(request, limits.max_body_bytes), limits, images=images)
        return items, await asyncio.wrap_future(batcher.submit(items))

    def answer(
        request: Request, started: float, status: int, body: dict[str, Any], **log: Any
    ) -> JSONResponse:
        record = {"event": "request", "path": request.url.path, "status": status,
                  "ms": round(1000 * (time.perf_counter() - started), 2), **log}  # fmt: skip
        LOG.info(json.dumps(record))
        headers = {"Retry-After": "1"} if status == 503 else None
        return JSONResponse(body, status_code=status, headers=headers)

    async def guarded(request: Request, shape: Any) -> JSONResponse:
        started = time.perf_counter()
        try:
            items, results = await verdicts(request)
        except BadRequest as error:
            return answer(request, started, error.status, _error(str(error), "invalid_request_error"))
        except QueueFull as error:
            return answer(request, started, 503, _error(f"the server is busy ({error}); retry", "overloaded"))
        except ValueError as error:  # the model refused an input (e.g. longer than its context)
            return answer(request, started, 400, _error(str(error), "invalid_request_error"))
        except Exception as error:  # a fault of ours: logged, answered without a traceback
            LOG.exception("internal error")
            return answer(
                request, started, 500, _error(f"internal error ({type(error).__name__})", "server_error")
            )
        flagged = sum(v.flagged for v in results)
        return answer(request, started, 200, shape(items, results), items=len(items), flagged=flagged)

    def moderation(items: list[Item], results: "list[Verdict]") -> dict[str, Any]:
        return {
            "id": f"modr-{uuid.uuid4().hex}",
            "model": model.cfg.model_name,
            "results": [
                {
                    "flagged": v.flagged,
                    "categories": {CATEGORY: v.flagged},
                    "category_scores": {CATEGORY: v.score},
                    "category_applied_input_types": {CATEGORY: item.kinds},
                }
                for item, v in zip(items, results, strict=True)
            ],
        }

    @app.post("/v1/moderations")
    async def moderations(request: Request) -> JSONResponse:
        return await guarded(request, moderation)

    @app.post("/classify")
    async def classify(request: Request) -> JSONResponse:
        return await guarded(request, lambda items, results: {"results": [v.to_dict() for v in results]})

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": model.cfg.identity(), "guard_sha256": digest,
                "threshold": guard.threshold, "queued": batcher.queued, "batches": batcher.batches}  # fmt: skip

    return app


async def _body(request: Any, limit: int) -> bytes:
    """The request body, read no further than ``limit`` bytes (413 past it: a huge body is never held)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BadRequest(413, f"the request body is {declared} bytes; at most {limit} are read")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(413, f"the request body is over {limit} bytes; at most {limit} are read")
        chunks.append(chunk)
    return b"".join(chunks)


def _error(message: str, kind: str) -> dict[str, Any]:
    """OpenAI's error shape."""
    return {"error": {"message": message, "type": kind}}
