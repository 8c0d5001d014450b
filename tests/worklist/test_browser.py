"""The web worklist in real headless Chromium (Debian chromium + chromedriver, driven by Selenium) against a real
node: a reader signs in, sees a new critical result move a study to the top without reloading, claims it and
completes it, and switches to arrival order."""

from __future__ import annotations

from pathlib import Path

import httpx
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.support.browser import click, rows, uids
from tests.support.dicom_files import series
from tests.support.helpers import READERS, storescu, wait_for
from tests.support.pipeline import analysis_overrides

ADA = {"Authorization": f"Bearer {READERS[0]['token']}"}


def test_a_new_critical_result_moves_its_study_to_the_top_live(start_node, tmp_path: Path, browser) -> None:  # noqa: ANN001
    node = start_node(**analysis_overrides())
    _, clean = series(tmp_path / "clean", 8, body_part="HEAD", priority="ROUTINE")
    assert storescu(node, clean).returncode == 0
    api = f"{node.http_url}/api/worklist"
    [first] = wait_for(
        lambda: (
            (w := httpx.get(api, headers=ADA).json()["items"])
            and w[0]["flags"] == []
            and _analysed(node, w[0]["uid"])
            and w
        ),
        timeout=90,
    )

    browser.get(node.http_url + "/")
    wait = WebDriverWait(browser, 20)
    token_box = wait.until(lambda d: d.find_element(By.ID, "token"))
    token_box.send_keys(READERS[0]["token"])
    browser.find_element(By.CSS_SELECTOR, "#signin-form button").click()
    wait.until(lambda d: uids(d) == [first["uid"]])
    wait.until(lambda d: d.find_element(By.ID, "live").text == "live")

    spec, bleed = series(tmp_path / "bleed", 12, lesion_hu=80, body_part="HEAD", priority="ROUTINE")
    assert storescu(node, bleed).returncode == 0
    # no reload from here on: the page follows the server's events
    WebDriverWait(browser, 90).until(
        lambda d: (r := rows(d)) and len(r) == 2 and r[1]["uid"] == first["uid"] and r[0]["flagged"]
    )
    top = rows(browser)[0]
    assert "AI: hyperdense region" in top["text"] and top["rank"] == "1"
    assert "AI: hyperdense region p=" in top["text"] and "(standin-hyperdense" in top["text"], "the reason is shown"
    flagged_uid = top["uid"]
    assert httpx.get(f"{api}/{flagged_uid}", headers=ADA).json()["study_instance_uid"] == spec.study_uid

    click(browser, f'tr[data-uid="{flagged_uid}"] button[data-act=claim]')
    wait.until(lambda d: "Reading: dr-ada" in rows(d)[0]["text"])
    click(browser, f'tr[data-uid="{flagged_uid}"] button[data-act=arm]')  # Complete asks to confirm
    assert httpx.get(f"{api}/{flagged_uid}", headers=ADA).json()["state"] == "IN PROGRESS", "not before the confirm"
    click(browser, f'tr[data-uid="{flagged_uid}"] button[data-act=complete]')
    wait.until(lambda d: uids(d) == [first["uid"]])
    assert httpx.get(f"{api}/{flagged_uid}", headers=ADA).json()["state"] == "COMPLETED"
    click(browser, "#undo button[data-undo]")  # a slip of the hand, taken back within the minute
    wait.until(lambda d: flagged_uid in uids(d))
    assert httpx.get(f"{api}/{flagged_uid}", headers=ADA).json()["state"] == "IN PROGRESS"
    click(browser, f'tr[data-uid="{flagged_uid}"] button[data-act=arm]')
    click(browser, f'tr[data-uid="{flagged_uid}"] button[data-act=complete]')
    wait.until(lambda d: uids(d) == [first["uid"]])
    Select(browser.find_element(By.ID, "view")).select_by_value("completed")
    wait.until(lambda d: uids(d) == [flagged_uid] and "completed by dr-ada" in rows(d)[0]["text"])
    Select(browser.find_element(By.ID, "view")).select_by_value("open")
    wait.until(lambda d: uids(d) == [first["uid"]])

    click(browser, "#items a[data-act=history]")
    wait.until(lambda d: "created" in d.find_element(By.CSS_SELECTOR, "#items .history").text)
    Select(browser.find_element(By.ID, "order")).select_by_value("arrival")
    wait.until(lambda d: uids(d) == [first["uid"]])


def _analysed(node, uid: str) -> bool:  # noqa: ANN001
    history = httpx.get(f"{node.http_url}/api/worklist/{uid}", headers=ADA).json()["history"]
    return any(h["event"] == "ai" for h in history)
