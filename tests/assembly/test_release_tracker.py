"""Which releases complete which studies: only a complete_on_release association's clean release, and only once no
other open association is still sending the same study."""

from __future__ import annotations

from dicomnode.assembly.release import ReleaseTracker

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
