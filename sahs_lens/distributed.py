"""Several processes, one job: who this process is, its share of the work, and checks that all agree.

sahs_lens does not schedule anything itself. It runs under the launchers the field already uses:
``torchrun`` (and ``accelerate launch``, ``deepspeed`` or a SLURM script calling them), which start one
process per GPU and set ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``.
``current_world`` reads the world from the ``torch.distributed`` process group when one is initialised,
or initialises one from those variables when ``WORLD_SIZE`` > 1 (``nccl`` where CUDA is available,
``gloo`` otherwise). A single process without them is a world of one, and nothing here does any work.

Three ideas make data parallelism exact rather than approximate:

* **Deterministic shares.** Work comes in numbered units (activation shards, probe head batches) that
  are the same units a single process would compute, in the same composition; rank ``r`` of ``N`` takes
  units ``r, r + N, r + 2N, ...`` of the list every rank computes identically (``World.share``). The
  numbers are therefore the ones a single process produces, bit for bit, and only the order of the work
  changes.
* **Agreement before work.** Ranks started with different models, data or options would write a result
  that is nobody's. Each rank hashes what it was given (``fingerprint``), the hashes are gathered, and
  every rank refuses, naming the part that differs and the ranks, before anything is written
  (``World.agree``).
* **Errors reach every rank.** A check that fails on one rank only (a missing file on one node) would
  leave the others waiting at the next collective until a timeout. ``World.all_ok`` runs a step on
  every rank and raises on all of them if it failed on any.

Coordination (barriers, small Python objects) runs on a separate ``gloo`` group, created once, so it
works on CPU whatever the default backend is, and with a long timeout (``SAHS_LENS_DIST_TIMEOUT_S``,
default 6 hours), because a rank with no work left waits at the final barrier for the slowest rank.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = ["World", "current_world", "env_world", "fingerprint", "shutdown"]

T = TypeVar("T")
_TIMEOUT_ENV = "SAHS_LENS_DIST_TIMEOUT_S"
_DEFAULT_TIMEOUT_S = 6 * 3600
_STATE: dict[str, Any] = {"group": None, "group_for": None, "initialised_here": False}
_ERRORS: dict[str, type[Exception]] = {
    e.__name__: e for e in (ValueError, TypeError, FileExistsError, FileNotFoundError, RuntimeError, OSError)
}


def fingerprint(value: Any) -> str:
    """SHA-256 of ``value`` as canonical JSON (sorted keys; anything not JSON is written as ``str``)."""
    text = json.dumps(value, sort_keys=True, default=str, ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def env_world() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` from the launcher's variables alone (no torch import).

    A clear ``ValueError`` when they are malformed (a rank outside ``0 .. WORLD_SIZE - 1``).
    """

    def read(name: str, default: int) -> int:
        raw = os.environ.get(name, "")
        if raw == "":
            return default
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"{name}={raw!r} is not an integer; the launcher (torchrun) sets it") from None

    size, rank, local = read("WORLD_SIZE", 1), read("RANK", 0), read("LOCAL_RANK", 0)
    if size < 1 or not 0 <= rank < size:
        raise ValueError(
            f"RANK={rank} and WORLD_SIZE={size} do not describe a process of a job (expected "
            "0 <= RANK < WORLD_SIZE); start the job with torchrun, or unset them for one process"
        )
    return rank, size, local


@dataclass(frozen=True)
class World:
    """This process's place in the job: ``rank`` of ``size`` (``local_rank`` on its machine)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    group: Any = field(default=None, repr=False, compare=False)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def share(self, items: Sequence[T]) -> list[T]:
        """This rank's share of ``items``: ``items[rank::size]`` (the same list on every rank)."""
        return list(items[self.rank :: self.size])

    def barrier(self) -> None:
        if self.size > 1:
            import torch.distributed as dist

            dist.barrier(group=self.group)

    def gather(self, obj: T) -> list[T]:
        """``obj`` of every rank, in rank order (on every rank). Objects travel in memory only."""
        if self.size == 1:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.size
        dist.all_gather_object(out, obj, group=self.group)
        return out

    def all_ok(self, step: Callable[[], T]) -> T:
        """Run ``step`` on every rank; if it raised on any rank, raise on every rank (the same message)."""
        error: Exception | None = None
        result: Any = None
        try:
            result = step()
        except Exception as exc:  # gathered, then re-raised below on every rank
            error = exc
        if self.size == 1:
            if error is not None:
                raise error
            return result  # type: ignore[no-any-return]
        reports = self.gather(None if error is None else (type(error).__name__, str(error)))
        failed = [(r, report) for r, report in enumerate(reports) if report is not None]
        if not failed:
            return result  # type: ignore[no-any-return]
        if error is not None:
            raise error
        first, (kind, message) = failed[0]
        raise _ERRORS.get(kind, RuntimeError)(f"rank {first} of {self.size}: {message}")

    def agree(self, parts: dict[str, str], *, what: str, fix: str) -> None:
        """Refuse on every rank unless every rank passed the same ``parts`` (name -> fingerprint)."""
        if self.size == 1:
            return
        seen = self.gather(parts)
        differ = [
            (name, [r for r in range(self.size) if seen[r].get(name) != seen[0].get(name)])
            for name in sorted({k for s in seen for k in s})
        ]
        differ = [(name, ranks) for name, ranks in differ if ranks]
        if differ:
            listed = "; ".join(
                f"{name}: rank(s) {', '.join(map(str, ranks))} differ from rank 0" for name, ranks in differ
            )
            raise ValueError(f"the {self.size} ranks disagree on {what} ({listed}); {fix}")


def current_world() -> World:
    """The world of this process: the initialised process group's, the launcher's, or a world of one.

    With ``WORLD_SIZE`` > 1 and no process group yet, one is initialised from the environment
    (``env://``): ``nccl`` when CUDA is available (after ``torch.cuda.set_device(LOCAL_RANK)``), else
    ``gloo``. ``shutdown()`` destroys a group initialised here.
    """
    rank, size, local = env_world()
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        if size == 1:
            return World()
        if not dist.is_available():
            raise RuntimeError(
                f"WORLD_SIZE={size} asks for {size} processes, but this torch has no torch.distributed; "
                "install a torch build with distributed support, or run one process"
            )
        missing = [n for n in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(n)]
        if missing:
            raise ValueError(
                f"WORLD_SIZE={size} is set but {' and '.join(missing)} is not: start the job with torchrun "
                "(torchrun --nproc_per_node=N -m sahs_lens ...), which sets all of them"
            )
        backend = "gloo"
        if torch.cuda.is_available():
            torch.cuda.set_device(local % torch.cuda.device_count())
            backend = "nccl"
        dist.init_process_group(backend=backend, timeout=_timeout())
        _STATE["initialised_here"] = True
    size, rank = dist.get_world_size(), dist.get_rank()
    if size == 1:
        return World()
    default = dist.group.WORLD
    if _STATE["group_for"] is not default:  # one coordination group per default group
        _STATE["group"] = dist.new_group(backend="gloo", timeout=_timeout())
        _STATE["group_for"] = default
    return World(rank=rank, size=size, local_rank=local, group=_STATE["group"])


def shutdown() -> None:
    """Destroy the process group if ``current_world`` initialised it (the CLI calls this at exit)."""
    if not _STATE["initialised_here"]:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
    _STATE.update(group=None, group_for=None, initialised_here=False)


def _timeout() -> datetime.timedelta:
    raw = os.environ.get(_TIMEOUT_ENV, "")
    try:
        seconds = float(raw) if raw else float(_DEFAULT_TIMEOUT_S)
    except ValueError:
        raise ValueError(f"{_TIMEOUT_ENV}={raw!r} is not a number of seconds") from None
    if seconds <= 0:
        raise ValueError(f"{_TIMEOUT_ENV} must be a positive number of seconds; got {raw}")
    return datetime.timedelta(seconds=seconds)
