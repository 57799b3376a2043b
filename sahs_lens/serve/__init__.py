"""``sahs-lens serve``: the guard as a moderation endpoint that a gateway calls before the model.

``app`` (the ASGI app: ``/v1/moderations`` in OpenAI's shape, ``/classify`` with the evidence, ``/health``),
``inputs`` (requests read as untrusted input, with limits), ``batcher`` (concurrent requests share one
prefill; a full queue answers 503), ``clients`` (a client and the few-line adapters for gateways).
FastAPI and uvicorn come with the ``serve`` extra (``pip install "sahs-lens[serve]"``).
"""

from __future__ import annotations

from sahs_lens.serve.app import CATEGORY, create_app
from sahs_lens.serve.batcher import Batcher, QueueFull
from sahs_lens.serve.inputs import BadRequest, Limits

__all__ = ["CATEGORY", "BadRequest", "Batcher", "Limits", "QueueFull", "create_app"]
