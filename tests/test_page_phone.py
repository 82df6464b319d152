"""The page on a phone, in a real headless chromium with a phone's screen and touch (the DevTools
protocol's device metrics and touch events): the reader kept at the text as it streams and when it ends,
Stop in reach, a tapped suggestion that leaves the on-screen keyboard down, a layout that gives a 360 px
screen to the text, and fingers' targets."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
pytest.importorskip("selenium", reason="install nextword[serve-test] (selenium) to test the page")

from browser import load, wait
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

PHONE = {"width": 360, "height": 740, "deviceScaleFactor": 1, "mobile": True}

# The page's streams, held by the test: a completion's body passes one of its events (a word) each time
# the test allows one more (window.allow), and its last ([DONE]) only once the test calls window.end().
# The rest of fetch is the browser's own.
HOLD_STREAMS = """
window.allowed = 0;
window.passed = 0;
window.allow = (n) => { window.allowed += n; };
let end;
window.ending = new Promise((resolve) => (end = resolve));
window.end = end;
const wait = () => new Promise((resolve) => setTimeout(resolve, 10));
const real = window.fetch;
window.fetch = async (...args) => {
  if (String(args[0]).includes('completions')) {
    // as many words as asked for: the tiny test model ends its texts after a few dozen
    const asked = JSON.parse(args[1].body);
    args[1] = { ...args[1], body: JSON.stringify({ ...asked, min_tokens: asked.max_tokens }) };
  }
  const response = await real(...args);
  if (!String(args[0]).includes('completions')) return response;
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const events = [];
  let rest = '';
  const body = new ReadableStream({
    async pull(controller) {
      while (window.passed >= window.allowed) await wait();
      while (!events.length) {
        const { done, value } = await reader.read();
        if (done) {
          controller.close();
          return;
        }
        const parts = (rest + value).split('\\n\\n');
        rest = parts.pop();
        events.push(...parts);
      }
      const event = events.shift();
      if (event.includes('[DONE]')) await window.ending;
      window.passed += 1;
      controller.enqueue(new TextEncoder().encode(event + '\\n\\n'));
    },
  });
  return new Response(body, { status: response.status, headers: response.headers });
};
"""


@pytest.fixture
def phone(browser, live_server) -> Iterator[Any]:
    """The page on a 360 x 740 phone screen with touch, its completions' streams held by the test."""
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)
    browser.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 5})
    try:
        load(browser, live_server.url)
        browser.execute_script(HOLD_STREAMS)
        yield browser
    finally:
        browser.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": False})
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def tap(driver: Any, element: Any) -> None:
    """A finger's tap at the middle of ``element`` (touch events, as a phone sends them)."""
    box = driver.execute_script(
        "const r = arguments[0].getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2]",
        element,
    )
    point = [{"x": box[0], "y": box[1]}]
    driver.execute_cdp_cmd("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": point})
    driver.execute_cdp_cmd("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


def in_sight(driver: Any, element_id: str) -> bool:
    """Whether the element (its last line, for a text) lies within the screen."""
    return driver.execute_script(
        "const r = document.querySelector(arguments[0]).getBoundingClientRect();"
        "return r.top >= 0 && r.bottom <= document.documentElement.clientHeight + 1",
        element_id,
    )


def words_shown(driver: Any) -> int:
    return driver.execute_script("return document.querySelectorAll('#output .word').length")


def start(driver: Any, words: int) -> None:
    """Tap Generate for ``words`` words (the screen at the page's top, as a phone's user finds it, or on
    a short screen scrolled down just far enough to show Generate at its bottom)."""
    driver.execute_script(
        "document.getElementById('words').value = arguments[0]; window.scrollTo(0, 0);"
        "document.getElementById('generate').scrollIntoView({block: 'nearest'})",
        str(words),
    )
    tap(driver, driver.find_element(By.ID, "generate"))
    wait(driver, lambda d: d.find_element(By.ID, "stop").is_displayed(), "the generation never started")


def finish(driver: Any) -> None:
    driver.execute_script("window.allow(1e9); window.end()")
    wait(driver, lambda d: d.find_element(By.ID, "generate").is_enabled(), "the generation never ended")


def test_the_text_and_stop_stay_in_sight_while_it_streams(phone):
    """On a phone the output lies below the fold: Generate left its first words out of sight, the newest
    words ran past the screen's bottom, and Stop scrolled away above them. Now the text comes into sight
    as it starts, the newest word is followed while the reader stays at it (and left alone once they
    scroll elsewhere), and Stop stays in sight above the text."""
    start(phone, 150)
    assert in_sight(phone, "#output .caret") and in_sight(phone, "#stop")
    started = phone.execute_script("return window.scrollY")
    passed = 0
    while words_shown(phone) < 60:  # a word at a time: the page scrolls at each
        passed += 1
        phone.execute_script("window.allow(1)")
        wait(phone, lambda d, n=passed: d.execute_script("return window.passed") >= n, "no more words came")
        wait(phone, lambda d: in_sight(d, "#output .caret"), "the newest word went out of sight")
    assert phone.execute_script("return window.scrollY") > started + 150  # it grew past the screen: followed
    assert in_sight(phone, "#stop")
    phone.execute_script("window.scrollTo(0, 0)")  # the reader goes back to the prompt
    phone.execute_script("window.allow(1e9)")
    wait(phone, lambda d: words_shown(d) >= 100, "the rest of the text never came")
    assert phone.execute_script("return window.scrollY") == 0  # not pulled back to the text
    finish(phone)


def test_on_a_short_screen_the_text_comes_into_sight_and_stop_stays_above_it(phone):
    """On a short screen (420 px: a landscape phone, or the keyboard up) the output starts below Generate,
    out of sight: the caret is scrolled into sight as the text starts. While it streams the page's body
    carries data-generating, which pins the buttons' bar (Stop) to the screen's top: a reader far down the
    text still has Stop in sight. Once the text ends the bar scrolls with the page again."""
    short = 420
    phone.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {**PHONE, "height": short})
    generating = "return document.body.hasAttribute('data-generating')"
    page_top = "return document.querySelector(arguments[0]).getBoundingClientRect().top + window.scrollY"
    assert not phone.execute_script(generating)
    start(phone, 150)
    assert in_sight(phone, "#output .caret")  # before any word: scrolled there as it started
    assert phone.execute_script(generating)
    stop_top = phone.execute_script(page_top, "#stop")
    phone.execute_script("window.allow(1e9)")  # every word but the end
    wait(phone, lambda d: words_shown(d) >= 150, "the text never came")
    phone.execute_script("document.getElementById('output').scrollIntoView({block: 'end'})")
    assert phone.execute_script("return window.scrollY") > stop_top + short  # a screen past Stop's place
    assert in_sight(phone, "#stop")
    finish(phone)
    assert not phone.execute_script(generating)


def test_the_end_of_a_text_leaves_the_reader_where_they_are(phone):
    """A tapped Generate has the focus; it goes to Stop and back to Generate as the text ends. Focusing
    Generate scrolled it into view: a phone's reader at the end of the text was thrown back up to it."""
    start(phone, 200)
    phone.execute_script("window.allow(1e9)")
    wait(phone, lambda d: words_shown(d) >= 200, "the text never came")
    phone.execute_script("document.getElementById('output').scrollIntoView({block: 'end'})")
    # where the last word is on the screen (the buttons' place, above the text, is out of sight)
    last = "return document.querySelector('#output .word:last-child').getBoundingClientRect().top"
    before = phone.execute_script(last)
    assert phone.execute_script("return document.getElementById('output').getBoundingClientRect().top") < -100
    finish(phone)
    assert abs(phone.execute_script(last) - before) <= 2, (before, phone.execute_script(last))
    assert phone.execute_script("return document.activeElement.id") == "generate"


def test_a_tapped_suggestion_leaves_the_keyboard_down(phone):
    """A chip's click put the focus in the prompt, which on a phone raises the on-screen keyboard over the
    next chips: building a sentence by taps meant closing the keyboard at each word. A tap now leaves the
    focus off the prompt; a click with a mouse or a key still puts it there, to type on."""
    prompt = phone.find_element(By.ID, "prompt")
    before = prompt.get_attribute("value")
    chip = phone.find_element(By.CSS_SELECTOR, "#suggestions .chip")
    word = chip.get_attribute("data-text")
    tap(phone, chip)
    wait(phone, lambda d: prompt.get_attribute("value") == before + word, "the tapped word was not added")
    assert phone.execute_script("return document.activeElement.id") != "prompt"
    wait(phone, lambda d: d.find_elements(By.CSS_SELECTOR, "#suggestions .chip"), "no new suggestions")
    phone.find_element(By.CSS_SELECTOR, "#suggestions .chip").click()  # a mouse
    assert phone.execute_script("return document.activeElement.id") == "prompt"


def test_a_tapped_keep_text_leaves_the_keyboard_down_and_a_key_or_a_click_types_on(phone):
    """Keep text, tapped, puts the text in the prompt and leaves the focus off it, as a tapped chip does;
    after a tap, a key on a chip (a click of no pointer) and a mouse's click on Keep text still put the
    focus in the prompt."""
    prompt = phone.find_element(By.ID, "prompt")
    keep = phone.find_element(By.ID, "use-output")
    start(phone, 3)
    finish(phone)
    # its text, not what WebDriver sees as shown: a word still fading in (opacity 0 at first) is not
    shown = phone.execute_script("return document.getElementById('output').textContent")
    tap(phone, keep)
    wait(phone, lambda d: not keep.is_enabled(), "the tapped Keep text did nothing")
    assert prompt.get_attribute("value") == shown
    assert phone.execute_script("return document.activeElement.id") != "prompt"
    wait(phone, lambda d: d.find_elements(By.CSS_SELECTOR, "#suggestions .chip"), "no new suggestions")
    chip = phone.find_element(By.CSS_SELECTOR, "#suggestions .chip")
    phone.execute_script("arguments[0].focus()", chip)
    chip.send_keys(Keys.ENTER)  # the last pointer was a finger; a key is not
    wait(phone, lambda d: prompt.get_attribute("value") != shown, "the chip's word was not added")
    assert phone.execute_script("return document.activeElement.id") == "prompt"
    phone.find_element(By.ID, "generate").click()  # the streams let through now: it runs to its end
    wait(phone, lambda d: keep.is_enabled(), "the second text never ended")
    keep.click()  # a mouse
    assert phone.execute_script("return document.activeElement.id") == "prompt"


def test_a_phone_gives_its_width_to_the_text_and_big_targets_to_a_finger(phone):
    """At 360 px the margins took 53 px a side (the prompt box 254 px wide), and with the on-screen
    keyboard up (740 px tall, 400 left) no suggestion was in sight under the 192 px header and the
    prompt box; at 180 px (a phone's page zoomed to 200 %) the model line's minimum width made the page
    scroll sideways; chips, tabs and buttons were 35-41 px tall for a finger (44 px asked for)."""
    width = phone.execute_script("return document.getElementById('prompt').getBoundingClientRect().width")
    assert width >= 0.8 * PHONE["width"], width
    phone.find_element(By.ID, "prompt").click()
    phone.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {**PHONE, "height": 400})  # the keyboard up
    assert in_sight(phone, "#suggestions .chip")  # the first row of chips: 0 of 8 were
    targets = phone.execute_script(
        "return [...document.querySelectorAll('.chip, .tabs button, button.primary, .where .switch')]"
        ".filter((e) => e.offsetParent).map((e) => [e.id || e.className, e.offsetHeight])"
    )
    assert targets and all(height >= 44 for _, height in targets), targets
    phone.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {**PHONE, "width": 180})
    scroll = "return [document.documentElement.clientWidth, document.documentElement.scrollWidth]"
    client, scrolled = phone.execute_script(scroll)
    assert scrolled <= client, (client, scrolled)
