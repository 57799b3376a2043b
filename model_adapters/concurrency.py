"""One lock per model: hooked forwards on a shared model run one at a time, so each sees only its hooks.

TransformerLens hooks (and PyTorch module hooks) live on the model object: while one thread's ``with
model.hooks(...)`` block is open, every forward of that model runs its hooks, whichever thread started
the forward. Two threads sharing one model would read and steer each other's activations. So every entry
point of ``HookedVLM`` that runs or hooks the model (``prepare`` included: fast tokenizers are not safe to
call from two threads at once) holds the model's re-entrant lock, and so does a guard attached to a plain
Hugging Face model (``SafetyHeadGuard.attach_hf``) for the whole ``with`` block. Concurrent callers are
serialised: they get exactly the results they would get one after another, and nested use in one thread
(a guard inside an ablation) works.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

_LOCKS: weakref.WeakKeyDictionary[Any, threading.RLock] = weakref.WeakKeyDictionary()
_GUARD = threading.Lock()


def model_lock(model: Any) -> threading.RLock:
    """The re-entrant lock of ``model`` (a Hugging Face ``nn.Module``), created on first use."""
    with _GUARD:
        lock = _LOCKS.get(model)
        if lock is None:
            lock = threading.RLock()
            _LOCKS[model] = lock
        return lock
