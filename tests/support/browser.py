"""Real headless Chromium for page tests (Debian chromium + chromedriver, driven by Selenium)."""

from __future__ import annotations

from collections.abc import Iterator

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.support.helpers import NodeProcess, require_tool

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,900",
]


def chromium() -> Iterator[webdriver.Chrome]:
    """A fresh headless Chromium (the `browser` fixture), quit afterwards."""
    options = webdriver.ChromeOptions()
    options.binary_location = require_tool("chromium")
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(require_tool("chromedriver")), options=options)
    yield driver
    driver.quit()


def rows(driver: webdriver.Chrome) -> list[dict]:
    """The table as the reader sees it, read in one go (the page re-renders rows on each change)."""
    return driver.execute_script("""return [...document.querySelectorAll('#items tr')].map(r => ({
        uid: r.dataset.uid, flagged: r.classList.contains('flagged'), text: r.innerText,
        rank: r.querySelector('.rank').innerText}))""")


def uids(driver: webdriver.Chrome) -> list[str]:
    return [r["uid"] for r in rows(driver)]


def click(driver: webdriver.Chrome, css: str) -> None:
    """A real click on the element, found afresh if a re-render replaced it."""

    def attempt(d: webdriver.Chrome) -> bool:
        d.find_element(By.CSS_SELECTOR, css).click()
        return True

    WebDriverWait(driver, 20, ignored_exceptions=[StaleElementReferenceException]).until(attempt)


def sign_in(driver: webdriver.Chrome, node: NodeProcess, token: str) -> None:
    driver.get(node.http_url + "/")
    wait = WebDriverWait(driver, 20)
    wait.until(lambda d: d.find_element(By.ID, "token")).send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "#signin-form button").click()
    wait.until(lambda d: d.find_element(By.ID, "app").is_displayed())
