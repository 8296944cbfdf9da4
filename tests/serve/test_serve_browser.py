"""The playground in a real browser: headless Chromium (Debian's `chromium` + `chromium-driver`, installed by
.ci/run) driven by Selenium, on the demo run folder over loopback. Every wait is bounded; each test saves a
screenshot under its tmp folder.

Without Chromium these tests are skipped on a developer's machine, and fail in CI (CI=true), where .ci/run
installs it."""

from __future__ import annotations

import json
import os
import re
import shutil
import time

import pytest

WAIT_S = 20
PERSIAN_CHARS = re.compile(r"[\u0600-\u06FF]")


def _binaries() -> tuple[str | None, str | None]:
    browser = next((shutil.which(b) for b in ("chromium", "chromium-browser") if shutil.which(b)), None)
    return browser, shutil.which("chromedriver")


@pytest.fixture(scope="module")
def driver():
    browser, chromedriver = _binaries()
    if not browser or not chromedriver:
        message = "headless Chromium not installed: apt-get install chromium chromium-driver (.ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-proxy-server",
                "--window-size=1280,900", "--lang=fa", "--disable-extensions", "--no-first-run"):
        opts.add_argument(arg)
    d = webdriver.Chrome(service=Service(chromedriver), options=opts)
    d.set_page_load_timeout(WAIT_S)
    d.set_script_timeout(WAIT_S)
    yield d
    d.quit()


def _wait(driver, condition, what: str, timeout: float = WAIT_S):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(condition, message=f"waited {timeout} s for {what}")


def _open(driver, server, fragment: str) -> None:
    driver.get(f"{server.url}/#{fragment}")
    _wait(driver, lambda d: d.execute_script("return document.readyState") == "complete", "the page")


def _set(driver, css: str, value: str) -> None:
    driver.execute_script("const e = document.querySelector(arguments[0]); e.value = arguments[1];"
                          "e.dispatchEvent(new Event('input'));", css, value)


def test_page_loads_rtl_offline_with_persian_font(driver, server, tmp_path):
    _open(driver, server, "chat")
    html = driver.find_element("tag name", "html")
    assert html.get_attribute("dir") == "rtl" and html.get_attribute("lang") == "fa"
    _wait(driver, lambda d: d.execute_script("return document.querySelectorAll('#chat-model option').length") >= 3,
          "the model list")
    # The vendored font is what renders the Persian text, and nothing came from another origin.
    assert _wait(driver, lambda d: d.execute_script(
        "return document.fonts.status === 'loaded' && document.fonts.check('16px Vazirmatn', 'سلام')"), "fonts")
    loaded = driver.execute_script(
        "return [...document.fonts].filter(f => f.status === 'loaded').map(f => f.family)")
    assert any("Vazirmatn" in f for f in loaded), loaded
    origins = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => new URL(e.name).origin)")
    assert origins and set(origins) == {server.url}, origins
    driver.save_screenshot(str(tmp_path / "chat_empty.png"))


def test_chat_answer_streams_into_the_page(driver, server, tmp_path):
    _open(driver, server, "chat")
    _wait(driver, lambda d: d.execute_script("return document.querySelectorAll('#chat-model option').length") >= 3,
          "the model list")
    driver.execute_script("const s = document.querySelector('#chat-model'); s.value = 'zero';"
                          "s.dispatchEvent(new Event('change'));")
    assert "ادامهٔ متن" in driver.find_element("id", "chat-mode").text  # a base model: plain continuation
    _set(driver, "#max-new-tokens", "60")
    _set(driver, "#chat-input", "کتابخانهٔ مرکزی شهر")
    # Count how often the answer's text changes while it streams in.
    driver.execute_script("""
        window.__updates = 0;
        new MutationObserver(() => { window.__updates++; })
          .observe(document.querySelector('#chat-log'), {subtree: true, childList: true, characterData: true});""")
    driver.execute_script("document.querySelector('#chat-send').click()")
    _wait(driver, lambda d: d.execute_script(
        "const m = document.querySelector('.msg.assistant'); return m && m.dataset.state === 'done'"), "the answer")
    answer = driver.find_element("css selector", ".msg.assistant .text").text
    stats = driver.find_element("css selector", ".msg.assistant .stats").text
    assert answer.strip() and "توکن" in stats
    assert driver.execute_script("return window.__updates") >= 10  # token by token, not all at once
    assert driver.find_element("css selector", ".msg.user .text").text == "کتابخانهٔ مرکزی شهر"
    driver.save_screenshot(str(tmp_path / "chat_answer.png"))

    # A chat model gets the conversation through its chat template; reset empties the log.
    driver.execute_script("const s = document.querySelector('#chat-model'); s.value = 'chat';"
                          "s.dispatchEvent(new Event('change'));")
    assert "قالب چت" in driver.find_element("id", "chat-mode").text
    _set(driver, "#chat-input", "سلام، حالت چطور است؟")
    driver.execute_script("document.querySelector('#chat-send').click()")
    _wait(driver, lambda d: d.execute_script(
        "const m = [...document.querySelectorAll('.msg.assistant')]; return m.length === 2 && m[1].dataset.state === 'done'"),
        "the second answer")
    assert driver.execute_script("return document.querySelectorAll('.msg.assistant')[1].dataset.mode") == "chat"
    driver.execute_script("document.querySelector('#chat-reset').click()")
    assert driver.execute_script("return document.querySelector('#chat-log').children.length") == 0


def test_compare_shows_two_answers_with_token_counts(driver, server, tmp_path):
    _open(driver, server, "compare")
    _wait(driver, lambda d: d.execute_script("return document.querySelectorAll('#compare-models input').length") >= 3,
          "the model boxes")
    driver.execute_script("""
        for (const b of document.querySelectorAll('#compare-models input'))
          b.checked = ['zero', 'lora'].includes(b.value);""")
    _set(driver, "#max-new-tokens", "40")
    _set(driver, "#compare-input", "شهر اصفهان")
    driver.execute_script("document.querySelector('#compare-run').click()")
    _wait(driver, lambda d: d.execute_script(
        "const a = [...document.querySelectorAll('#compare-grid .answer')];"
        "return a.length === 2 && a.every(x => x.dataset.state === 'done')"), "two answers")
    cards = driver.find_elements("css selector", "#compare-grid .answer")
    assert sorted(c.get_attribute("data-model") for c in cards) == ["lora", "zero"]
    for c in cards:
        assert c.find_element("css selector", ".text").text.strip()
        stats = c.find_element("css selector", ".stats").text
        assert "توکن بر ثانیه" in stats and "نویسه بر توکن" in stats, stats
        assert int(c.get_attribute("data-tokens")) > 0
    driver.save_screenshot(str(tmp_path / "compare.png"))


def test_runs_page_draws_the_loss_curve_live(driver, server, demo, tmp_path):
    metrics = demo["zero"] / "metrics.jsonl"
    n_train = sum(json.loads(x)["kind"] == "train" for x in metrics.read_text(encoding="utf-8").splitlines())
    _open(driver, server, "runs/demo%3Azero")
    points = lambda d: d.execute_script(  # noqa: E731
        "const p = document.querySelector('#loss-chart polyline.train-loss'); return p && +p.dataset.points")
    _wait(driver, lambda d: points(d) == n_train, f"a loss curve of {n_train} points")
    assert driver.execute_script("return +document.querySelector('#loss-chart polyline.val-loss').dataset.points") == 2
    assert driver.find_element("css selector", "#run-card").text  # the model card, rendered
    assert not driver.execute_script("return document.querySelector('#run-card script')")
    driver.save_screenshot(str(tmp_path / "runs_loss_curve.png"))
    # The trainer writes another step: the open page redraws within its 2 s poll.
    last = json.loads(metrics.read_text(encoding="utf-8").splitlines()[-1])
    with open(metrics, "a", encoding="utf-8") as f:
        f.write(json.dumps({"kind": "train", "step": last["step"] + 1, "loss": 4.0, "lr": 1e-3,
                            "time": time.time()}) + "\n")
    _wait(driver, lambda d: points(d) == n_train + 1, "the curve to grow while the run trains", timeout=10)
    assert driver.find_element("id", "live-badge").is_displayed()


def test_dataset_preview_shows_persian_rows_and_drop_reasons(driver, server, tmp_path):
    _open(driver, server, "runs/demo%3Acorpus")
    _wait(driver, lambda d: d.execute_script(
        "return document.querySelectorAll('#dataset-preview tbody tr').length") == 10, "ten corpus rows")
    texts = [e.text for e in driver.find_elements("css selector", "#dataset-preview td.text")]
    assert all(PERSIAN_CHARS.search(t) for t in texts), texts[:2]
    first_text = "document.querySelector('#dataset-preview td.text').textContent"
    first = driver.execute_script(f"return {first_text}")
    assert driver.find_element("css selector", "#drop-reasons").text.count("\n") >= 3
    driver.execute_script("document.querySelector('#dataset-preview').scrollIntoView()")
    driver.save_screenshot(str(tmp_path / "dataset_preview.png"))
    driver.execute_script("[...document.querySelectorAll('#dataset-preview .pager button')]"
                          ".find(b => b.textContent === 'بعدی').click()")
    _wait(driver, lambda d: d.execute_script(f"return {first_text}") != first, "page two")
    driver.execute_script("document.querySelector(\"#dataset-preview button[data-view='dropped']\").click()")
    reason_js = ("const r = document.querySelector('#dataset-preview tbody tr');"
                 "return r && r.children.length === 5 && r.children[2].textContent")
    _wait(driver, lambda d: d.execute_script(reason_js) and d.execute_script(
        "return document.querySelector('#dataset-preview thead th:nth-child(3)').textContent") == "دلیل",
        "dropped rows with their reason")
    reason = driver.execute_script(reason_js)
    assert reason and reason in driver.find_element("css selector", "#drop-reasons").text
    driver.execute_script("document.querySelector('#dataset-preview').scrollIntoView()")
    driver.save_screenshot(str(tmp_path / "dataset_dropped.png"))


def test_stop_button_ends_the_answer_and_frees_the_model(driver, server, tmp_path):
    from tests.serve.client import get_json

    _open(driver, server, "chat")
    _wait(driver, lambda d: d.execute_script("return document.querySelectorAll('#chat-model option').length") >= 3,
          "the model list")
    driver.execute_script("const s = document.querySelector('#chat-model'); s.value = 'zero';"
                          "s.dispatchEvent(new Event('change'));")
    _set(driver, "#max-new-tokens", "500")
    _set(driver, "#temperature", "1")
    _set(driver, "#chat-input", "شهر اصفهان")
    driver.execute_script("document.querySelector('#chat-send').click()")
    state = "const m = document.querySelector('.msg.assistant'); return m && m.dataset.state"
    _wait(driver, lambda d: d.execute_script(state) in ("streaming", "done"), "the answer to start")
    driver.execute_script("document.querySelector('#chat-stop').click()")
    _wait(driver, lambda d: d.execute_script(state) in ("stopped", "done"), "the answer to end")
    tokens = driver.execute_script("return document.querySelector('.msg.assistant').dataset.tokens")
    # Stopped; or (rarely) the model had already ended its answer on its own before the click.
    assert driver.execute_script(state) == "stopped" or int(tokens) < 500
    assert driver.find_element("id", "chat-send").is_enabled()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and get_json(server.port, "/api/models")[1][0]["busy"]:
        time.sleep(0.05)
    assert all(m["busy"] == 0 for m in get_json(server.port, "/api/models")[1])
    driver.save_screenshot(str(tmp_path / "chat_stopped.png"))
