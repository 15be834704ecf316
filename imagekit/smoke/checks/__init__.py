"""The checks of a smoke run, in the order they run. Each is a function ``(session) -> message``
that raises :class:`~imagekit.smoke.model.CheckFailed` or ``CheckSkipped``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..session import SmokeSession

CheckFn = Callable[[SmokeSession], str]


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    run: CheckFn


def all_checks() -> list[Check]:
    from . import author, environment, inference, protocol, services

    return [*protocol.CHECKS, *inference.CHECKS, *services.CHECKS, *environment.CHECKS, *author.CHECKS]
