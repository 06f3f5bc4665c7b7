"""What an earlier try of the same generation created: which tries count, and the second look past read lag.

A try equal to ``first_try_of_generation`` starts anew; a later try re-attaches to what the tries from that first
one up to itself created, found by the Airflow identity the operators stamp (``airflow_ti``,
``airflow_try_number``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from airflow_provider_hatchet._identity import TRY_KEY, first_try_of_generation
from airflow_provider_hatchet.client.endpoints import RUN_VISIBILITY_WINDOW

T = TypeVar("T")


def earlier_tries(context: Any) -> range:
    """The earlier tries of this try's generation, whose creations a retry re-attaches to; empty on a first try
    and on the first try after a clear.

    :param context: the task's context.
    """
    return range(first_try_of_generation(context), int(context["ti"].try_number))


def created_by(metadata: Mapping[str, Any], tries: range) -> bool:
    """Whether the thing carrying ``metadata`` was created by one of ``tries``.

    :param metadata: its additional metadata.
    :param tries: the tries that count.
    """
    try:
        return int(str(metadata.get(TRY_KEY))) in tries
    except ValueError:
        return False


def look_twice(log: logging.Logger | Any, look: Callable[[], T], settled: Callable[[T], bool],
               unsettled_note: str) -> T:
    """Look; if the answer may be Hatchet's read lag, look again once something just created would be visible.

    :param log: where the second look is announced.
    :param look: the lookup.
    :param settled: whether an answer needs no second look.
    :param unsettled_note: what the first answer lacked, for the log.
    """
    visible_from = time.monotonic() + RUN_VISIBILITY_WINDOW
    answer = look()
    if settled(answer):
        return answer
    log.info("%s; looking again in %.0f s.", unsettled_note, RUN_VISIBILITY_WINDOW)
    time.sleep(max(0.0, visible_from - time.monotonic()))
    return look()
