"""The worklist inside a real `dicomnode serve`: dcmtk pushes a study, the embedded worker flags it, the item
moves to the top with its reason, the live event stream announces it, and the critical-finding webhook reaches
a real HTTP receiver through the outbox (retried after a failure, refused ones dead until retried by hand)."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import httpx
import pytest

from dicomnode.catalog.states import OutboxState
from tests.support.dicom_files import series
from tests.support.helpers import READERS, node_cli, storescu, wait_for
from tests.support.pipeline import analysis_overrides
from tests.support.webhook import Receiver

ADA = {"Authorization": f"Bearer {READERS[0]['token']}"}


@pytest.fixture
def receiver():  # noqa: ANN201
    r = Receiver()
    yield r
    r.close()


def worklist(node) -> list[dict]:  # noqa: ANN001
    return httpx.get(f"{node.http_url}/api/worklist", headers=ADA, timeout=10).json()["items"]


def follow_events(node, seen: list[str], stop: threading.Event) -> threading.Thread:  # noqa: ANN001
    def run() -> None:
        try:
            with httpx.stream("GET", f"{node.http_url}/api/worklist/events", headers=ADA, timeout=None) as stream:
                for line in stream.iter_lines():
                    if line.startswith("data:"):
                        seen.append(line)
                    if stop.is_set():
                        return
        except httpx.HTTPError:
            pass  # the node stopped at teardown

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_flagged_study_moves_to_the_top_is_announced_live_and_notified(
    start_node, tmp_path: Path, receiver: Receiver
) -> None:  # noqa: ANN001
    receiver.statuses = [503]  # the receiver is down for the first POST: the outbox retries
    notify = {
        "webhooks": [receiver.url],
        "retry_backoff_s": 0.5,
        "poll_seconds": 0.2,
        "headers": {"X-Hospital-Key": "k1"},
    }
    node = start_node(**analysis_overrides(), notify=notify)
    _, clean = series(tmp_path / "clean", 8, body_part="HEAD", priority="ROUTINE")
    assert storescu(node, clean).returncode == 0
    wait_for(lambda: len(worklist(node)) == 1 and "nothing found" in _history(node, worklist(node)[0]), timeout=90)
    events: list[str] = []
    stop = threading.Event()
    follow_events(node, events, stop)
    wait_for(lambda: events, timeout=10)  # the stream opens with the current version

    spec, bleed = series(tmp_path / "bleed", 12, lesion_hu=80, body_part="HEAD", priority="ROUTINE")
    assert storescu(node, bleed).returncode == 0
    top = wait_for(lambda: (w := worklist(node)) and w[0]["study_instance_uid"] == spec.study_uid and w[0], timeout=90)
    assert top["flagged"] and top["rank"] == 1 and top["priority"] == "ROUTINE"
    assert top["modalities"] == "CT", "our own SR in the study is not an imaging modality of the item"
    assert top["explanation"].startswith("AI: hyperdense region p=") and "(standin-hyperdense" in top["explanation"]
    wait_for(lambda: len(events) >= 2, timeout=5)  # the stream announced the changes (its reader is a thread)
    stop.set()

    [post] = wait_for(receiver.accepted, timeout=30)
    assert len(receiver.posts) == 2 and receiver.posts[0][0] == 503, "delivered on the retry after a 503"
    assert post["study_instance_uid"] == spec.study_uid and post["accession_number"] == spec.accession
    assert post["finding"] == "hyperdense region" and post["probability"] > 0.9 and post["urgency"] == 0.5
    assert post["model"] == "standin-hyperdense" and post["workitem_uid"] == top["uid"]
    assert receiver.posts[1][2]["X-Hospital-Key"] == "k1"

    def settled() -> list[dict]:  # the receiver saw the POST before the notifier commits its outcome
        rows = [json.loads(line) for line in node_cli(node, "notifications", "--json").stdout.splitlines()]
        return [] if any(r["state"] == OutboxState.SENDING for r in rows) else rows

    [listed] = wait_for(settled, timeout=10)
    assert (listed["state"], listed["attempts"]) == ("sent", 2)
    printed = [json.loads(line)["uid"] for line in node_cli(node, "worklist", "--json").stdout.splitlines()]
    assert printed == [i["uid"] for i in worklist(node)], "the CLI shows the same order"
    assert spec.study_uid in node_cli(node, "worklist").stdout
    assert READERS[0]["token"] not in node.log() and spec.accession not in node.log()


def test_a_refused_notification_is_dead_until_retried_and_nothing_is_lost(
    start_node, tmp_path: Path, receiver: Receiver
) -> None:  # noqa: ANN001
    receiver.statuses = [400]  # the receiver refuses the request as it is: retrying cannot help
    node = start_node(**analysis_overrides(), notify={"webhooks": [receiver.url], "poll_seconds": 0.2})
    spec, bleed = series(tmp_path, 12, lesion_hu=80, body_part="HEAD")
    assert storescu(node, bleed).returncode == 0

    def dead() -> list[dict]:
        rows = [
            json.loads(line)
            for line in node_cli(node, "notifications", "--json", "--state", "dead").stdout.splitlines()
        ]
        return rows

    [row] = wait_for(dead, timeout=90)
    assert row["attempts"] == 1 and "HTTP 400" in row["last_error"]
    assert node_cli(node, "notifications", "retry", "999").returncode == 1
    assert node_cli(node, "notifications", "retry", str(row["id"])).returncode == 0
    [post] = wait_for(receiver.accepted, timeout=30)
    assert post["study_instance_uid"] == spec.study_uid and node.alive()


def _history(node, item: dict) -> str:  # noqa: ANN001
    detail = httpx.get(f"{node.http_url}/api/worklist/{item['uid']}", headers=ADA, timeout=10).json()
    return " | ".join(h["reason"] for h in detail["history"])


def test_http_port_in_use_stops_the_node_with_a_clear_error(start_node) -> None:  # noqa: ANN001
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(RuntimeError) as failed:
            start_node(http={"port": port})
    assert "node exited with 1" in str(failed.value) and f"port {port} in use?" in str(failed.value)
