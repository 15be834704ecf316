"""Per-name exclusion of service starts and stops (krunner/services/supervisor.py).

Service names come from the agent (``start-service``, ``shutdown-service``), so the lock of a
name must live only while a start or stop uses it: the reliability fuzz found every fuzzed
``shutdown-service`` payload kept in memory for good (19 MB after 10,000 messages).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from krunner.services.supervisor import Supervisor


def test_same_name_is_serialised_and_different_names_run_together(tmp_path: Path):
    async def main():
        sup = Supervisor({}, tmp_path)
        order: list[str] = []

        async def use(name: str, tag: str, hold: float) -> None:
            async with sup.exclusive(name):
                order.append(f"{tag}+")
                await asyncio.sleep(hold)
                order.append(f"{tag}-")

        a1 = asyncio.create_task(use("jupyter", "a1", 0.05))
        await asyncio.sleep(0)
        a2 = asyncio.create_task(use("jupyter", "a2", 0.0))
        b = asyncio.create_task(use("ttyd", "b", 0.0))
        await asyncio.sleep(0.01)
        in_use = sup.names_in_use
        await asyncio.gather(a1, a2, b)
        return order, in_use, sup.names_in_use

    order, in_use, after = asyncio.run(main())
    assert in_use == {"jupyter"}  # ttyd came and went while a1 held jupyter
    assert order.index("b-") < order.index("a1-")  # another name did not wait
    assert order.index("a1-") < order.index("a2+")  # the same name did
    assert after == frozenset()


def test_names_are_forgotten_after_use_even_when_the_body_fails(tmp_path: Path):
    async def main():
        sup = Supervisor({}, tmp_path)
        for i in range(1000):
            try:
                async with sup.exclusive("x" * 10_000 + str(i)):
                    if i % 2:
                        raise RuntimeError("start failed")
            except RuntimeError:
                pass
        return sup.names_in_use

    assert asyncio.run(main()) == frozenset()
