"""Learning-rate schedules: the single table behind ``learning_rate``.

A schedule is built once per fit from the optimizer and says whether it steps
per batch or per epoch. Only ``"constant"`` exists so far; power, exponential,
piecewise-constant, performance (plateau) and 1cycle schedules are planned and
each will be one row here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["SCHEDULES", "Schedule"]


@dataclass(frozen=True)
class Schedule:
    """One row of the schedule table.

    Parameters
    ----------
    factory : callable or None
        ``factory(optimizer, hp)`` returns a ``torch.optim.lr_scheduler``
        object, or ``None`` for a constant rate.
    per : {"batch", "epoch"}
        When the scheduler's ``step()`` is called.
    summary : str
        One-line description for the documentation.
    """

    factory: Callable | None = None
    per: str = "epoch"
    summary: str = ""


SCHEDULES: dict[str, Schedule] = {
    "constant": Schedule(summary="learning_rate_init throughout training"),
}
