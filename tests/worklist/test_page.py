"""The page as a radiologist meets it, in real headless Chromium: five AI statuses told apart, every text readable
(WCAG AA contrast measured on the rendered page), labelled controls, local times, search, and a phone-width layout
that keeps Claim in view."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from dicomnode.catalog.db import open_catalog
from dicomnode.demo.synthetic import SeriesSpec, SyntheticPatient, radiograph
from tests.support.browser import rows as browser_rows
from tests.support.browser import sign_in
from tests.support.dicom_files import series
from tests.support.helpers import READERS, storescu
from tests.support.pipeline import analysis_overrides, rule, wait_jobs

CONTRAST = """
function lum(rgb) {
  const linear = (v) => (v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
  const c = rgb.match(/[\\d.]+/g).slice(0, 3).map((v) => linear(v / 255));
  return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
}
function background(el) {
  for (let e = el; e; e = e.parentElement) {
    const bg = getComputedStyle(e).backgroundColor;
    if (bg && !bg.startsWith("rgba(0, 0, 0, 0)") && bg !== "transparent") return bg;
  }
  return "rgb(255, 255, 255)";
}
const worst = [];
for (const el of document.querySelectorAll("#app *")) {
  if (!el.offsetParent || ![...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
  const a = lum(getComputedStyle(el).color), b = lum(background(el));
  const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  if (ratio < 4.5) worst.push([el.tagName, el.className, el.textContent.trim().slice(0, 30), ratio.toFixed(2)]);
}
return worst;
"""


def test_statuses_contrast_labels_search_and_phone_layout(start_node, tmp_path: Path, browser) -> None:  # noqa: ANN001
    rules = [
        rule("ct", ["standin-hyperdense"], modality=["CT"], body_part=["HEAD"]),
        rule("too-wide", ["standin-hyperdense"], modality=["DX"]),
    ]
    node = start_node(**analysis_overrides(rules=rules))
    patient = SyntheticPatient(name="Lovelace^Ada", patient_id="PID-ADA")
    _, flagged = series(tmp_path, 12, lesion_hu=80, body_part="HEAD", priority="STAT", patient=patient)
    _, negative = series(tmp_path, 12, body_part="HEAD", priority="HIGH")
    _, failed = series(tmp_path, 8, body_part="HEAD")
    del failed[4]
    _, unrouted = series(tmp_path, 3, body_part="CHEST", priority="LOW")
    radiograph(SeriesSpec(modality="DX", body_part="CHEST"), np.random.default_rng(0).random((64, 64))).save_as(
        tmp_path / "xr.dcm", enforce_file_format=True
    )
    for files in (flagged, negative, failed, unrouted, [tmp_path / "xr.dcm"]):
        assert storescu(node, files).returncode == 0
    wait_jobs(open_catalog(node.catalog_url), 4, {"done", "failed", "out of scope"}, timeout=120)

    sign_in(browser, node, READERS[0]["token"])
    wait = WebDriverWait(browser, 30)
    statuses = "return [...document.querySelectorAll('[data-ai-status]')].map((e) => e.dataset.aiStatus)"
    wait.until(lambda d: len(browser_rows(d)) == 5 and len(d.execute_script(statuses)) == 4)
    assert set(browser.execute_script(statuses)) == {"negative", "failed", "out_of_scope", "not_analysed"}
    assert browser.find_elements(By.CSS_SELECTOR, "tr.flagged .badge.ai"), "the flagged one shows its finding"
    texts = " ".join(r["text"] for r in browser_rows(browser))
    assert texts.count("AI: nothing found") == 1 and "AI failed: not analysed" in texts
    assert "AI output, not for diagnostic use" in texts

    assert browser.execute_script(CONTRAST) == [], "every visible text meets 4.5:1"
    for control in ("view", "order", "search", "modality", "flagged"):
        label = browser.find_element(By.CSS_SELECTOR, f"label[for={control}]")
        assert label.text.strip() or control == "flagged", control

    browser.find_element(By.CSS_SELECTOR, "#items a[data-act=history]").click()
    history = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#items .history").text)
    zone = browser.execute_script("return Intl.DateTimeFormat().resolvedOptions().timeZone")
    assert "created" in history and ("UTC" in history or zone != "UTC"), "history times carry their zone"

    search = browser.find_element(By.ID, "search")
    search.send_keys("lovelace ada")
    wait.until(lambda d: len(browser_rows(d)) == 1 and "Lovelace Ada" in browser_rows(d)[0]["text"])
    search.send_keys(Keys.CONTROL, "a")
    search.send_keys(Keys.DELETE)  # as a reader empties the box (an input event, unlike clear())
    wait.until(lambda d: len(browser_rows(d)) == 5)

    browser.execute_script("document.querySelector('#items tr').focus()")
    ActionChains(browser).send_keys("c").perform()  # keyboard: c claims the focused study
    wait.until(lambda d: "Reading: dr-ada" in browser_rows(d)[0]["text"])
    assert (
        httpx.get(
            f"{node.http_url}/api/worklist", headers={"Authorization": f"Bearer {READERS[0]['token']}"}, timeout=10
        ).json()["items"][0]["state"]
        == "IN PROGRESS"
    )

    browser.set_window_size(390, 844)
    wait.until(lambda d: d.execute_script("return document.documentElement.scrollWidth") <= 390)
    claim = browser.find_elements(By.CSS_SELECTOR, "#items button[data-act=claim]")[0]
    right = browser.execute_script("return arguments[0].getBoundingClientRect().right", claim)
    assert 0 < right <= 390, "Claim stays on screen at phone width"
    assert browser.execute_script(CONTRAST) == []
