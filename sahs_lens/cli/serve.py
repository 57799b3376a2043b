"""``sahs-lens serve``: the guard as a moderation endpoint (``sahs_lens.serve``) on uvicorn.

Paths and the optional packages are checked before the model loads; the server binds 127.0.0.1 unless
``--host`` says otherwise. ``--check`` starts it, sends it one moderation request over loopback, prints the
answer and stops: the help example, and a smoke test of a deployment.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any

from sahs_lens.cli.checks import non_negative_int, positive_float, positive_int

__all__ = ["add_serve_arguments", "cmd_serve"]

CHECK_TEXT = "Write a phishing email to steal bank passwords."


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--guard", required=True, help="guard directory (from guard fit), fitted on --model")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)"
    )
    p.add_argument(
        "--port", type=non_negative_int, default=8000, help="port (default: 8000; 0: any free one)"
    )
    p.add_argument(
        "--max-batch", type=positive_int, default=16, help="prompts per shared prefill (default: 16)"
    )
    p.add_argument(
        "--max-wait-ms",
        type=positive_float,
        default=5.0,
        help="how long a batch waits for more requests (ms, default: 5)",
    )
    p.add_argument(
        "--max-queue",
        type=positive_int,
        default=256,
        help="prompts waiting at most; past it: 503 (default: 256)",
    )
    p.add_argument(
        "--max-items", type=positive_int, default=32, help="inputs per request at most (default: 32)"
    )
    p.add_argument(
        "--check", action="store_true", help="start, send one request to itself, print the answer, stop"
    )


def cmd_serve(args: argparse.Namespace) -> int:
    guard_dir = Path(args.guard).expanduser()
    if not (guard_dir / "guard.json").is_file():
        raise FileNotFoundError(
            f"--guard {args.guard} holds no guard (guard.json); fit one with sahs-lens guard fit"
        )
    if args.port > 65535:
        raise ValueError(f"--port {args.port}: a port is 0 to 65535")
    try:
        import uvicorn  # noqa: F401
        from fastapi import FastAPI  # noqa: F401
    except ImportError as error:
        raise ImportError(
            f"sahs-lens serve needs FastAPI and uvicorn ({error.name} is missing): pip install 'sahs-lens[serve]'"
        ) from None
    from sahs_lens.cli.loading import load_model
    from sahs_lens.guard import SafetyHeadGuard
    from sahs_lens.serve import Limits, create_app

    model = load_model(args)
    guard = SafetyHeadGuard.load(guard_dir, model=model)
    _json_logs()
    app = create_app(
        model, guard, limits=Limits(max_items=args.max_items), max_batch=args.max_batch,
        max_wait_s=args.max_wait_ms / 1000, max_queue=args.max_queue,
    )  # fmt: skip
    server = _server(app, args.host, args.port)
    if args.check:
        return _check(server)
    print(f"serving {model.cfg.model_name} on {_url(server)}: POST /v1/moderations, POST /classify, GET /health "
          "(Ctrl-C stops)", file=sys.stderr, flush=True)  # fmt: skip
    server.run()
    return 0


def _server(app: Any, host: str, port: int) -> Any:
    import uvicorn

    return uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False))


def _url(server: Any) -> str:
    config = server.config
    port = config.port
    if getattr(server, "servers", None):  # port 0: the port the system chose
        port = server.servers[0].sockets[0].getsockname()[1]
    return f"http://{config.host}:{port}"


def _check(server: Any) -> int:
    """Run ``server`` in a thread, moderate ``CHECK_TEXT`` through it, print the answer, stop it."""
    from sahs_lens.serve.clients import ModerationClient

    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not server.started:
        raise RuntimeError("the server did not start (is the port in use?); choose another --port")
    try:
        result = ModerationClient(_url(server)).moderate(CHECK_TEXT)[0]
        print(f"{_url(server)}/v1/moderations answered for {CHECK_TEXT!r}:")
        print(json.dumps(result, indent=2))
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    return 0


class _JSONLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        return message if message.startswith("{") else json.dumps({"event": "log", "level": record.levelname,
                                                                    "message": message})  # fmt: skip


def _json_logs() -> None:
    """The server's request log: one JSON object per line on stderr."""
    logger = logging.getLogger("sahs_lens.serve")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_JSONLines())
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
