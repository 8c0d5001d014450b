"""Which releases complete which studies: only a complete_on_release association's clean release, and only once no
other open association is still sending the same study."""

from __future__ import annotations

from types import SimpleNamespace

from dicomnode.assembly.release import ReleaseTracker
from dicomnode.dicom.scp import handle_connection_closed, handle_released
from dicomnode.ops.metrics import NodeMetrics

CT = ("DICOMNODE", "1.2.3")
MR = ("DICOMNODE", "1.2.4")


def test_the_last_release_of_a_study_completes_it_and_an_abort_never_does() -> None:
    done: list[tuple[str, str]] = []
    tracker = ReleaseTracker(lambda study, _at: done.append(study))
    tracker.opened(1, completes_on_release=True)
    tracker.opened(2, completes_on_release=True)
    tracker.opened(3, completes_on_release=False)
    tracker.stored(1, CT)
    tracker.stored(2, CT)  # a second association sends more of the same study
    tracker.stored(2, MR)
    tracker.stored(3, MR)
    tracker.released(1)
    assert done == [], "association 2 is still sending the CT study"
    tracker.released(2)
    assert done == [CT], "the MR study is still being sent by association 3"
    tracker.released(3)
    assert done == [CT], "association 3's peer does not complete on release"

    tracker.opened(4, completes_on_release=True)
    tracker.stored(4, MR)
    tracker.aborted(4)
    tracker.released(4)
    assert done == [CT], "an aborted association completes nothing"


def test_a_connection_closed_before_evt_released_still_completes_the_study() -> None:
    """The peer reads the A-RELEASE-RP and closes at once; EVT_CONN_CLOSE (DUL thread) may then fire before the
    association thread triggers EVT_RELEASED (seen on a loaded CI machine). The handlers are driven with a
    stand-in association because that thread interleaving cannot be caused on demand; the real flow is
    tests/assembly/test_complete_on_release.py."""
    done: list[tuple[str, str]] = []
    tracker = ReleaseTracker(lambda study, _at: done.append(study))
    metrics = NodeMetrics()
    gate = SimpleNamespace(close_association=lambda assoc: None)
    assoc = SimpleNamespace(is_released=True, dimse=SimpleNamespace(discard_unfinished=lambda: None))
    metrics.active_associations.inc()

    tracker.opened(id(assoc), completes_on_release=True)
    tracker.stored(id(assoc), CT)
    handle_connection_closed(SimpleNamespace(assoc=assoc), metrics, tracker, gate)
    assert done == [CT]
    handle_released(SimpleNamespace(assoc=assoc), tracker)
    assert done == [CT], "completed once"

    aborted = SimpleNamespace(is_released=False, dimse=assoc.dimse)
    metrics.active_associations.inc()
    tracker.opened(id(aborted), completes_on_release=True)
    tracker.stored(id(aborted), MR)
    handle_connection_closed(SimpleNamespace(assoc=aborted), metrics, tracker, gate)
    assert done == [CT], "a connection closed without a release completes nothing"
