"""The HTTP side of a running node: token revocation by SIGHUP, and the docs page under its security policy in
real Chromium."""

from __future__ import annotations

import signal

import httpx
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.support.helpers import READERS, wait_for, write_config


def me(node, token: str) -> int:  # noqa: ANN001
    return httpx.get(f"{node.http_url}/api/me", headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code


def test_sighup_reloads_the_token_list_and_a_bad_edit_keeps_it(node) -> None:  # noqa: ANN001
    ada, bob = READERS[0]["token"], READERS[1]["token"]
    assert (me(node, ada), me(node, bob)) == (200, 200)
    config = node.workdir / "dicomnode.toml"
    node.sections["http"]["tokens"] = READERS[:1]
    write_config(config, node.sections)
    node.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: me(node, bob) == 401, timeout=15)
    assert me(node, ada) == 200
    assert "http.tokens reloaded: 1 reader tokens" in node.log()
    assert bob not in node.log() and ada not in node.log()

    config.write_text(config.read_text() + "\n[http\nbroken")
    node.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "configuration not reloaded, current tokens kept" in node.log(), timeout=15)
    assert node.alive() and me(node, ada) == 200


def test_the_docs_page_renders_under_its_policy_with_the_tab_token(node, browser) -> None:  # noqa: ANN001
    browser.get(node.http_url + "/")
    browser.execute_script("sessionStorage.setItem('dicomnode.token', arguments[0])", READERS[0]["token"])
    browser.get(node.http_url + "/api/docs")  # same tab: sessionStorage carries the token, nothing is stored
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock"))
    paths = browser.execute_script(
        "return [...document.querySelectorAll('.opblock-summary-path')].map(e => e.innerText)"
    )
    assert any("/api/worklist" in p for p in paths)
    assert browser.execute_script("return localStorage.length") == 0
