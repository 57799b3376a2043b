"""Calling the endpoint: a small client, and the adapters that put it in front of a gateway's model.

Gateways call a moderation step before the model in one of a few shapes; each adapter below is that shape
around ``ModerationClient`` (standard library only, so the adapters run where the gateway runs):

- ``pre_call_check(data)``: a LiteLLM-style pre-call hook. It reads the last user message of an OpenAI
  chat request and raises ``Blocked`` when the guard flags it (LiteLLM turns an exception in a custom
  guardrail's ``async_pre_call_hook`` into a refused request);
- ``guardrails_action(context)``: a NeMo Guardrails-style action returning ``True`` when the user message
  is allowed (register it with ``rails.register_action(guardrails_action, "sahs_lens_check")`` and call it
  from a Colang input rail);
- ``Scanner.scan(text)``: a LlamaFirewall-style scanner returning a decision, a score and a reason.

``docs/serving.md`` shows each in place; ``tests/integration/test_serve.py`` runs them against a server.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

__all__ = ["Blocked", "ModerationClient", "ScanResult", "Scanner", "guardrails_action", "pre_call_check"]

DEFAULT_URL = os.environ.get("SAHS_LENS_URL", "http://127.0.0.1:8000")


class Blocked(RuntimeError):
    """The guard flagged a request: ``score`` is its malicious probability."""

    def __init__(self, score: float) -> None:
        super().__init__(f"blocked by the safety-head guard (score {score:.3f})")
        self.score = score


class ModerationClient:
    """``POST /v1/moderations`` and ``/classify`` over HTTP (``urllib``; no third-party package).

    ``url`` defaults to ``$SAHS_LENS_URL``, else ``http://127.0.0.1:8000``."""

    def __init__(self, url: str | None = None, timeout: float = 30.0) -> None:
        self.url, self.timeout = (url or DEFAULT_URL).rstrip("/"), timeout

    def moderate(self, text: str | list[str]) -> list[dict[str, Any]]:
        """OpenAI's ``results``: one ``{"flagged", "category_scores", ...}`` per input."""
        return list(self._post("/v1/moderations", {"input": text})["results"])

    def classify(self, text: str | list[str]) -> list[dict[str, Any]]:
        """The verdicts with their evidence (heads' contributions, model identity, guard hash)."""
        return list(self._post("/classify", {"input": text})["results"])

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            self.url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return dict(json.loads(response.read()))
        except urllib.error.HTTPError as error:  # a 4xx/5xx: its message says what was wrong
            message = json.loads(error.read() or b"{}").get("error", {}).get("message", error.reason)
            raise RuntimeError(f"{self.url}{path} answered {error.code}: {message}") from None


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):  # OpenAI content parts
                return "\n".join(p.get("text", "") for p in content if p.get("type") == "text")
            return str(content or "")
    return ""


def pre_call_check(data: dict[str, Any], client: ModerationClient | None = None) -> dict[str, Any]:
    """LiteLLM-style pre-call hook: ``data`` unchanged, or ``Blocked`` if its last user message is flagged."""
    result = (client or ModerationClient()).moderate(_last_user_text(data.get("messages", [])))[0]
    if result["flagged"]:
        raise Blocked(float(result["category_scores"]["malicious"]))
    return data


def guardrails_action(context: dict[str, Any] | None = None, client: ModerationClient | None = None) -> bool:
    """NeMo Guardrails-style action: ``True`` when ``context["user_message"]`` is allowed."""
    text = str((context or {}).get("user_message", ""))
    return not (client or ModerationClient()).moderate(text)[0]["flagged"]


@dataclass(frozen=True)
class ScanResult:
    """A LlamaFirewall-style decision: ``"block"`` or ``"allow"``, the score, and why."""

    decision: str
    score: float
    reason: str


class Scanner:
    """LlamaFirewall-style scanner: ``scan(text) -> ScanResult``, the reason naming the heads that weighed most."""

    def __init__(self, client: ModerationClient | None = None) -> None:
        self.client = client or ModerationClient()

    def scan(self, text: str) -> ScanResult:
        verdict = self.client.classify(text)[0]
        shares = {h: v for h, v in verdict["contributions"].items() if v is not None}
        top = sorted(shares, key=lambda h: -abs(shares[h]))[:3]
        reason = (
            f"malicious probability {verdict['score']:.3f} vs threshold {verdict['threshold']:.3f}; "
            f"heads weighing most: {', '.join(f'{h} ({shares[h]:+.2f})' for h in top)}"
        )
        return ScanResult("block" if verdict["flagged"] else "allow", float(verdict["score"]), reason)
