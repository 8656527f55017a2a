"""Calling a model on a batch so that one failing item costs only itself."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

logger = logging.getLogger(__name__)
Item = TypeVar("Item")


def call_isolating_failures(call: Callable[[list[Item]], Sequence[Any]], items: Sequence[Item], name: str) -> list[tuple[Any, str | None]]:
    """``call`` on the whole batch; if it raises, on each item alone. Returns (result, error) per item,
    the error being ``"<ExceptionType>: <message>"`` and the result None where the item raised."""
    try:
        return [(result, None) for result in call(list(items))]
    except Exception as batch_error:  # noqa: BLE001 - any model error is isolated per item
        logger.info("%s raised on a batch of %d (%s); retrying one at a time", name, len(items), batch_error)
    outcomes: list[tuple[Any, str | None]] = []
    for item in items:
        try:
            outcomes.append((call([item])[0], None))
        except Exception as error:  # noqa: BLE001
            outcomes.append((None, f"{type(error).__name__}: {error}"))
    return outcomes
