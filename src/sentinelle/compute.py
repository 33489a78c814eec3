"""Where per-message work runs: in this process, or as Dask tasks (the ``compute`` params).

The stages (``stage.run``) call ``configure`` with ``params.compute``; library code calls
``ordered_map`` (or ``map_texts``) for work split into independent pieces, and gets the
results in order, so every scheduler gives the same bytes. Below ``compute.min_rows``
messages, or with ``scheduler: none``, the pieces run here, one after the other, and Dask
is never imported (a 5.5K-message run does not pay for it). Above it, they are tasks of a
Dask cluster: ``local`` starts a ``LocalCluster`` of worker processes on 127.0.0.1 for the
stage (stopped when the stage ends); an address (``tcp://host:8786``) uses a running
cluster (``dask scheduler`` + ``dask worker``, dask-jobqueue, dask-kubernetes, Coiled).
At most two tasks per worker are in flight, so the results waiting here stay few. Every
worker runs the garbage collector as the stages do (``collector.relax``).

``client_for`` is also the Dask client of ``sentinelle score --scheduler``.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sentinelle import collector
from sentinelle.errors import UserError

log = logging.getLogger("sentinelle")


@dataclass(frozen=True)
class Settings:
    """The ``compute`` params (``params.ComputeParams`` has the same fields)."""

    scheduler: str = "none"
    workers: int | None = None
    memory_per_worker: str = "auto"
    partition_rows: int = 250_000
    min_rows: int = 500_000


_settings = Settings()
# Once a cluster is in use: its client, its number of workers, and what stops it.
_active: tuple[Any, int, contextlib.ExitStack] | None = None


def configure(p: Any) -> None:
    """Use the ``compute`` params ``p`` (any object with ``Settings``' fields) from now on."""
    global _settings
    _settings = Settings(p.scheduler, p.workers, p.memory_per_worker, p.partition_rows, p.min_rows)


def settings() -> Settings:
    return _settings


def uses_dask(n_rows: int) -> bool:
    """Whether work over ``n_rows`` messages runs as Dask tasks."""
    return _settings.scheduler != "none" and n_rows >= _settings.min_rows


def on_this_machine() -> bool:
    """Whether tasks run on this machine (``local``, or here), so they may write files in
    this process's temporary folders for it to read."""
    return _settings.scheduler in ("none", "local")


def chunks(n: int, size: int | None = None) -> list[tuple[int, int]]:
    """``[start, end)`` bounds of ``n`` items in pieces of ``size`` (``partition_rows``)."""
    size = size or _settings.partition_rows
    return [(start, min(start + size, n)) for start in range(0, n, size)]


def ordered_map(
    func: Callable[..., Any], items: Iterable[Any], n_rows: int, *shared: Any
) -> Iterator[Any]:
    """``func(item, *shared)`` for every item, in order: as Dask tasks when ``uses_dask(n_rows)``
    (``shared`` is sent to each worker once), else here. ``func`` must be importable by name
    (a module-level function) or picklable."""
    if not uses_dask(n_rows):
        yield from (func(item, *shared) for item in items)
        return
    client, workers = _client_in_use()
    shared_futures = [client.scatter(Boxed(value), broadcast=True, hash=False) for value in shared]
    pending: deque[Any] = deque()
    try:
        for item in items:
            # Scattered first: the piece goes straight to a worker, not through the scheduler.
            piece = client.scatter(Boxed(item), hash=False)
            pending.append(client.submit(_call, func, piece, *shared_futures, pure=False))
            if len(pending) >= 2 * workers:
                yield _take(pending)
        while pending:
            yield _take(pending)
    finally:
        for future in [*pending, *shared_futures]:
            future.cancel()


class Boxed:
    """A value that travels as one pickle: distributed serialises a list or dict element by
    element, many times slower for a piece's texts (docs/performance.md)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __getstate__(self) -> tuple[Any]:
        return (self.value,)  # never falsy: pickle skips __setstate__ for a falsy state

    def __setstate__(self, state: tuple[Any]) -> None:
        (self.value,) = state


def _call(func: Callable[..., Any], item: Boxed, *shared: Boxed) -> Boxed:
    return Boxed(func(item.value, *(value.value for value in shared)))


def _take(pending: deque[Any]) -> Any:
    future = pending.popleft()
    result = future.result().value
    future.release()
    return result


def map_texts(func: Callable[[str], Any], texts: Sequence[str]) -> list[Any]:
    """``[func(t) for t in texts]``, in pieces of ``partition_rows`` texts as Dask tasks when
    ``uses_dask(len(texts))``."""
    if not uses_dask(len(texts)):
        return [func(t) for t in texts]
    pieces = (list(texts[a:b]) for a, b in chunks(len(texts)))
    return [out for part in ordered_map(_apply, pieces, len(texts), func) for out in part]


def _apply(texts: list[str], func: Callable[[str], Any]) -> list[Any]:
    return [func(t) for t in texts]


@contextlib.contextmanager
def session(p: Any) -> Iterator[None]:
    """``configure(p)`` for the ``with`` block; a cluster started in it is stopped on leaving,
    and the settings before it come back."""
    global _settings
    before = _settings
    configure(p)
    try:
        yield
    finally:
        release()
        _settings = before


def release() -> None:
    """Stop the cluster this process started (or leave the one it reached), if any; the next
    task starts or reaches one again. The workers' memory goes back to the machine."""
    global _active
    if _active is not None:
        stack, _active = _active[2], None
        stack.close()


def _client_in_use() -> tuple[Any, int]:
    """The client of this process's cluster, started (or reached) on first use."""
    global _active
    if _active is None:
        stack = contextlib.ExitStack()
        client, where, workers = stack.enter_context(
            client_for(_settings.scheduler, _settings.workers, _settings.memory_per_worker)
        )
        log.info("compute: %s", where)
        _active = (client, workers, stack)
        atexit.register(release)
    return _active[0], _active[1]


@contextlib.contextmanager
def client_for(
    scheduler: str | None, workers: int | None = None, memory_per_worker: str = "auto"
) -> Iterator[tuple[Any, str, int]]:
    """A Dask client (``None`` for ``None``/``none``: this process), a description of where
    the work runs, and the number of workers."""
    if scheduler in (None, "none"):
        yield None, "in-process", 1
        return
    import dask
    from distributed import Client, LocalCluster

    # The cluster's own chatter (start, stop, comms) is not the command's output.
    logging.getLogger("distributed").setLevel(logging.WARNING)
    if scheduler == "local":
        n = workers or len(os.sched_getaffinity(0))
        with dask.config.set(GLIBC_MALLOC):
            cluster = LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                memory_limit=memory_per_worker,
            )
        with cluster, Client(cluster) as client:
            _relax_collectors(client)
            yield client, f"local cluster of {n} workers", n
        return
    try:
        client = Client(scheduler, timeout=30)
    except (OSError, TimeoutError) as exc:
        raise UserError(f"scheduler {scheduler}: cannot reach the Dask scheduler ({exc})") from None
    with client:
        n = len(client.scheduler_info()["workers"])
        if n == 0:
            raise UserError(f"scheduler {scheduler}: the cluster has no workers")
        _relax_collectors(client)
        yield client, f"scheduler {scheduler} with {n} workers", n


# Dask's nannies start workers with MALLOC_TRIM_THRESHOLD_=65536, which turns off glibc's
# dynamic mmap threshold: every array over 128 KiB is then mapped fresh and unmapped when
# freed, page faults that slow the counting (docs/performance.md). Local workers keep
# glibc's defaults, as the stages do; one set in the environment still reaches them.
GLIBC_MALLOC = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}


def _relax_collectors(client: Any) -> None:
    """Every worker, now and joining later (a restarted one too), runs the garbage collector
    as the stages do (``collector.relax``; docs/performance.md)."""
    client.register_worker_callbacks(setup=collector.relax)
