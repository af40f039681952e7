"""Learning-rate schedules: the single table behind ``learning_rate``.

Only ``"constant"`` exists so far. Until the others land, a schedule can be
attached through the ``callbacks`` hyperparameter, e.g. skorch's
``LRScheduler`` (the optimizer's rate is read at every step on every path).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SCHEDULES", "Schedule"]


@dataclass(frozen=True)
class Schedule:
    """One row of the schedule table.

    Parameters
    ----------
    summary : str
        One-line description for the documentation.
    """

    summary: str = ""


SCHEDULES: dict[str, Schedule] = {
    "constant": Schedule(summary="learning_rate_init throughout training"),
}
