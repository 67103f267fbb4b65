"""The reorder window: results leave in inventory order, and one slow target holds
back at most ``size`` finished results (on trio's virtual clock)."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from mtls_audit.scanner.engine.ordering import OrderedWindow


def run_targets(durations: list[float], size: int) -> tuple[list[int], list[tuple[float, list[int]]], int]:
    """Start targets as the engine does (admit, then scan, then deliver). Returns the
    order results left in, when each target started, and the most results ever held."""

    async def main() -> tuple[list[int], list[tuple[float, list[int]]], int]:
        send, receive = trio.open_memory_channel[int](0)
        window: OrderedWindow[int] = OrderedWindow(send, size)
        starts: list[tuple[float, list[int]]] = []
        most_held = 0

        async def scan_target(position: int) -> None:
            nonlocal most_held
            await trio.sleep(durations[position])
            await window.deliver(position, position)
            most_held = max(most_held, window.held)

        async def produce() -> None:
            async with send, trio.open_nursery() as targets:
                for position in range(len(durations)):
                    await window.admit(position)
                    starts.append((trio.current_time(), [position]))
                    targets.start_soon(scan_target, position)

        left: list[int] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(produce)
            async for result in receive:
                left.append(result)
        return left, starts, most_held

    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_results_leave_in_inventory_order():
    left, _, _ = run_targets([0.3, 0.1, 0.2, 0.05, 0.4, 0.01], size=3)
    assert left == [0, 1, 2, 3, 4, 5]


def test_a_slow_first_target_holds_back_at_most_the_window():
    durations = [20.0] + [0.01] * 5000
    left, starts, most_held = run_targets(durations, size=8)
    assert left == list(range(5001))
    assert most_held <= 8
    # Behind the slow target only the window's worth of targets started; the rest
    # waited for it instead of finishing into memory.
    started_early = [positions[0] for at, positions in starts if at < 20.0]
    assert started_early == list(range(8))


def test_the_window_must_hold_something():
    send, _ = trio.open_memory_channel[int](0)
    with pytest.raises(ValueError):
        OrderedWindow(send, 0)
