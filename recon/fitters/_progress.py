"""When a fitter calls its ``progress(step, total, losses)`` callback.

Reading a loss off a GPU waits for every queued kernel, and GridPull's losses copy its
site arrays to the host, so a report at every iteration makes a short GPU fit half as slow
again. Fitters report the first step, every hundredth of the run and the last step,
which a progress bar shows as smoothly.
"""

from __future__ import annotations


def progress_due(step: int, total: int) -> bool:
    """True at ``step`` 1, at every ``max(1, total // 100)``-th step and at ``total``."""
    return step == 1 or step >= total or step % max(1, total // 100) == 0
