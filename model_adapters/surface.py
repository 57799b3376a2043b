"""The surface the method uses: what any model must offer for sahs_lens to find, test and guard its heads.

``HookedVLM`` satisfies it on every backend; sahs_lens talks to models only through these members, so a
model reached some other way (another hook library, a serving engine) joins by offering the same ten.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class VLM(Protocol):
    """``cfg`` (n_layers, n_heads, d_head, identity()), ``tokenizer``, ``eos_token_ids``, ``pad_token_id``,
    ``prepare``, ``hooks``, ``run_with_hooks``, ``run_with_cache``, ``__call__``, ``generate``,
    ``generate_tokens``."""

    cfg: Any
    tokenizer: Any
    eos_token_ids: list[int]
    pad_token_id: int

    def prepare(self, prompts: str | Sequence[str], images: Any = None) -> Any: ...

    def hooks(self, fwd_hooks: Sequence[Any] = ()) -> AbstractContextManager[Any]: ...

    def run_with_hooks(self, inputs: Any, fwd_hooks: Sequence[Any] = ()) -> Any: ...

    def run_with_cache(self, inputs: Any, names_filter: Any = None, **kwargs: Any) -> tuple[Any, Any]: ...

    def __call__(self, inputs: Any) -> Any: ...

    def generate(self, inputs: Any, max_new_tokens: int = 32, **kwargs: Any) -> list[str]: ...

    def generate_tokens(self, inputs: Any, max_new_tokens: int = 32, **kwargs: Any) -> Any: ...
