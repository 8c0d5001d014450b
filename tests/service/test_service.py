"""The background-service base: reconcile before the first round, wake, a failed round logged and retried,
more work drained at once, stop joins and closes once. Waits for events, never for time."""

from __future__ import annotations

import logging
import threading

import pytest

from dicomnode.service import Service


class Probe(Service):
    def __init__(self, fail_first: bool = False, backlog: int = 0) -> None:
        super().__init__("probe", interval_s=3600)  # only wake() or the start can run a round
        self.calls: list[str] = []
        self.round = threading.Event()
        self.fail_first = fail_first
        self.backlog = backlog
        self.closed = 0

    def reconcile(self) -> None:
        self.calls.append("reconcile")

    def run_round(self) -> bool:
        self.calls.append("round")
        if self.fail_first:
            self.fail_first = False
            self.round.set()
            raise RuntimeError("first round fails")
        more = self.backlog > 0
        self.backlog -= 1
        if not more:
            self.round.set()
        return more

    def close(self) -> None:
        self.closed += 1


def test_reconcile_then_a_round_at_start_and_one_per_wake() -> None:
    probe = Probe()
    probe.start()
    assert probe.round.wait(10)
    assert probe.calls[:2] == ["reconcile", "round"]
    probe.round.clear()
    probe.wake()
    assert probe.round.wait(10), "a wake runs a round long before the hour-long interval"
    probe.stop()
    probe.stop()
    assert not probe.is_alive() and probe.closed == 1


def test_a_round_with_more_work_is_followed_at_once() -> None:
    probe = Probe(backlog=3)
    probe.start()
    assert probe.round.wait(10)
    probe.stop()
    assert probe.calls == ["reconcile", "round", "round", "round", "round"]


def test_a_failed_round_logs_one_line_and_the_service_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    probe = Probe(fail_first=True)
    with caplog.at_level(logging.ERROR, logger="dicomnode.service"):
        probe.start()
        assert probe.round.wait(10)
        probe.round.clear()
        probe.wake()
        assert probe.round.wait(10)
    probe.stop()
    failures = [r for r in caplog.records if "probe round failed" in r.getMessage()]
    assert len(failures) == 1 and failures[0].exc_info is not None
    assert probe.calls.count("round") >= 2


def test_stop_before_start_closes_without_a_thread() -> None:
    probe = Probe()
    probe.stop()
    assert probe.closed == 1 and probe.calls == []
