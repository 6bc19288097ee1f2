"""Running many independent tasks: on Ray (local or a cluster), or in this process.

Tasks carry file paths and small values, never large arrays: a task reads its input
from disk and writes its output there, so the driver's memory does not grow with the
scene, and a worker on another machine of a cluster needs only a shared file system.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from typing import Callable

from recon.errors import InputError

TASK_RETRIES = 2
"A task that raises or whose worker dies is run again up to this many times."


@dataclass
class Outcome:
    """What running the tasks gave: results by key, and one line per task that failed."""

    results: dict
    failures: dict


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    # a Ray task error wraps the task's own; its last line is the task's message
    return (text[-1] if text else type(exc).__name__)[:400]


class LocalExecutor:
    """Runs the tasks one after another in this process (no Ray); ``retries`` as on Ray."""

    name = "local"

    def __init__(self, *, retries: int = TASK_RETRIES):
        self.retries = retries

    def run(self, fn: Callable, jobs: list, *, on_done: Callable | None = None) -> Outcome:
        """Run ``fn(*args)`` for every (key, args) of ``jobs``; ``on_done(key, result or
        None)`` as each finishes."""
        results, failures = {}, {}
        for key, args in jobs:
            for attempt in range(self.retries + 1):
                try:
                    results[key] = fn(*args)
                    failures.pop(key, None)
                    break
                except Exception as exc:  # reported with the others; the rest go on
                    failures[key] = one_line(exc)
            if on_done is not None:
                on_done(key, results.get(key))
        return Outcome(results, failures)

    def close(self) -> None:
        pass


class RayExecutor:
    """Runs the tasks as Ray tasks, one CPU each.

    address : None starts a local Ray with ``workers`` CPUs (default: one per core), or
              uses the Ray this process already started; "auto" or "host:port" joins a
              running cluster.
    """

    name = "ray"

    def __init__(self, *, workers: int | None = None, address: str | None = None, retries: int = TASK_RETRIES):
        try:
            import ray
        except ImportError:
            raise InputError("Ray is not installed: pip install 'recon[ray]' (or run with --workers 0)") from None
        if workers is not None and (isinstance(workers, bool) or workers < 1):
            raise InputError(f"workers must be a positive integer, got {workers!r}")
        self.ray = ray
        self.retries = retries
        self.started = False
        # ray.init installs its own SIGTERM handler; the caller's comes back on close()
        self._sigterm = signal.getsignal(signal.SIGTERM)
        if not ray.is_initialized():
            kwargs = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
            try:
                if address:
                    ray.init(address=address, **kwargs)
                else:
                    ray.init(num_cpus=workers or os.cpu_count() or 1, **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise InputError(f"cannot start or reach Ray{f' at {address}' if address else ''}: {one_line(exc)}") from None
            self.started = True

    def run(self, fn: Callable, jobs: list, *, on_done: Callable | None = None) -> Outcome:
        ray = self.ray
        remote = ray.remote(num_cpus=1, max_retries=self.retries, retry_exceptions=True)(fn)
        pending = {remote.remote(*args): key for key, args in jobs}
        results, failures = {}, {}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                key = pending.pop(ref)
                try:
                    results[key] = ray.get(ref)
                except Exception as exc:  # retries are spent: report it, keep the others
                    failures[key] = one_line(exc)
                if on_done is not None:
                    on_done(key, results.get(key))
        return Outcome(results, failures)

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()
            if self._sigterm is not None:
                signal.signal(signal.SIGTERM, self._sigterm)


def make_executor(*, workers: int | None = None, address: str | None = None, retries: int = TASK_RETRIES):
    """Ray unless ``workers`` is 0 (this process, one task at a time)."""
    if workers == 0:
        if address:
            raise InputError("--workers 0 runs in this process; it cannot be combined with --ray-address")
        return LocalExecutor(retries=retries)
    return RayExecutor(workers=workers, address=address, retries=retries)
