"""The page for a sighted keyboard user, a finger and a screen reader's heading keys, in a real headless
chromium: the scored text is one Tab stop whose words the arrow keys move among, each showing its
probability where it can be seen (not only in a hover's title); a tap on a word shows it too; each
section of the page has a heading (h2) a screen reader can move to."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
pytest.importorskip("selenium", reason="install nextword[serve-test] (selenium) to test the page")

from browser import ax_node, load, press, shift_tab, wait
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

TEXT = "the network stores the weights"


@pytest.fixture
def page(browser, live_server):
    return load(browser, live_server.url)


def score(driver, text: str) -> None:
    """Score ``text`` in the score view, pressing the Score button (which keeps the focus)."""
    driver.find_element(By.ID, "tab-score").click()
    driver.execute_script("document.getElementById('score-text').value = arguments[0]", text)
    driver.find_element(By.ID, "score-button").click()
    wait(driver, lambda d: "perplexity" in d.find_element(By.ID, "score-summary").text, "no score shown")


def shown_probability(p: float) -> str:
    """A probability as the page writes it (app.js's formatProbability): 0.042, or 1.2e-5 when tiny."""
    if p >= 0.001:
        return f"{p:.3f}"
    mantissa, exponent = f"{p:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def expected_lines(model, text: str) -> list[str]:
    """What the page shows for each scored word of ``text`` (one model word to each typed word here)."""
    return [
        f"{w.word}: p = {shown_probability(math.exp(w.logprob))}{' (unknown word)' if w.unknown else ''}"
        for w in model.score(text).words
    ]


def focused_word(driver) -> tuple[str, int] | None:
    """The scored word that has the focus, and its place among the scored words; None if none has."""
    found = driver.execute_script(
        "const words = [...document.querySelectorAll('#scored .scored-word')];"
        "const i = words.indexOf(document.activeElement);"
        "return i < 0 ? null : [words[i].textContent, i];"
    )
    return None if found is None else (found[0], found[1])


def word_line(driver) -> str:
    line = driver.find_element(By.ID, "scored-word-p")
    return line.text if line.is_displayed() else ""


def test_the_scored_text_is_one_tab_stop_whose_words_show_their_probability(page, model):
    """Tab reaches the scored text once, on one word; the arrow keys, Home and End move a visible focus
    among the words, and the focused word's probability shows on the page, not only in a hover's title."""
    score(page, TEXT)
    lines = expected_lines(model, TEXT)
    assert word_line(page) == ""  # nothing focused yet
    press(page, Keys.TAB)  # from the Score button
    assert focused_word(page) == ("the", 0)
    assert word_line(page) == lines[0]
    word = page.switch_to.active_element
    assert word.value_of_css_property("outline-style") == "solid"  # the focus is seen
    assert float(word.value_of_css_property("outline-width").removesuffix("px")) >= 2
    # a screen reader, landing on the word, says it with its probability (the word's name, from its text)
    page.execute_script("document.activeElement.id = 'focused-word'")
    said = lines[0].replace(": p = ", " (p = ") + ")"
    assert ax_node(page, "focused-word")["name"]["value"] == said
    page.execute_script("document.activeElement.removeAttribute('id')")
    press(page, Keys.ARROW_RIGHT, Keys.ARROW_RIGHT)
    assert focused_word(page) == ("stores", 2) and word_line(page) == lines[2]
    press(page, Keys.END)
    assert focused_word(page) == ("weights", 4) and word_line(page) == lines[4]
    press(page, Keys.HOME, Keys.ARROW_LEFT)  # before the first: the last
    assert focused_word(page) == ("weights", 4)
    press(page, Keys.ARROW_UP)
    assert focused_word(page) == ("the", 3) and word_line(page) == lines[3]
    # one Tab stop: the next Tab leaves the text, and Shift+Tab comes back to the word last moved to
    stops = "return document.querySelectorAll('#scored [tabindex=\"0\"]').length"
    assert page.execute_script(stops) == 1
    press(page, Keys.TAB)
    assert focused_word(page) is None
    inside = "return document.getElementById('scored').contains(document.activeElement)"
    assert not page.execute_script(inside)
    shift_tab(page)
    assert focused_word(page) == ("the", 3)
    # the words' title, for a mouse, says the same
    assert page.switch_to.active_element.get_attribute("title") == lines[3]
    # the text as shown and as copied is still the text typed; a screen reader hears the probability in
    # the word it lands on, so the line beside the legend stays out of its way
    assert page.find_element(By.ID, "scored").text == TEXT
    assert ax_node(page, "scored-word-p").get("ignored")
    # a text scored again: its first word is the Tab stop, and the old word's probability is gone
    score(page, "the weights")
    assert word_line(page) == ""
    press(page, Keys.TAB)
    assert focused_word(page) == ("the", 0)


def test_right_to_left_the_left_arrow_moves_to_the_next_word(page):
    """In Hebrew the next word is on the left: the left arrow goes there, as the eye does."""
    score(page, "הילד קורא ספר")
    press(page, Keys.TAB)
    assert focused_word(page) == ("הילד", 0)
    press(page, Keys.ARROW_LEFT)
    assert focused_word(page) == ("קורא", 1)
    press(page, Keys.ARROW_RIGHT)
    assert focused_word(page) == ("הילד", 0)


def test_a_tap_on_a_word_shows_its_probability(page, model):
    """A phone has no hover: a tap on a word focuses it and shows its probability."""
    score(page, TEXT)
    lines = expected_lines(model, TEXT)
    word = page.find_elements(By.CLASS_NAME, "scored-word")[1]
    box = page.execute_script(
        "const r = arguments[0].getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]",
        word,
    )
    page.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 1})
    try:
        point = [{"x": box[0], "y": box[1]}]
        page.execute_cdp_cmd("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": point})
        page.execute_cdp_cmd("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
        wait(page, lambda d: focused_word(d) == ("network", 1), "the tap did not focus the word")
    finally:
        page.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": False})
    assert word_line(page) == lines[1]
    page.find_elements(By.CLASS_NAME, "scored-word")[4].click()  # a mouse's click, the same
    assert focused_word(page) == ("weights", 4) and word_line(page) == lines[4]


def test_the_focused_words_probability_stays_in_sight_when_zoomed_in(page, model):
    """At 400% zoom (a 320 by 225 CSS px window) the line with the focused word's probability sat below
    the scored text, out of sight while the word was in it: the legend now stays at the window's foot."""
    text = " ".join([TEXT] * 12)
    score(page, text)
    size = page.get_window_size()
    page.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": 320, "height": 225, "deviceScaleFactor": 1, "mobile": False},
    )
    try:
        word = page.find_elements(By.CLASS_NAME, "scored-word")[2]
        page.execute_script("arguments[0].scrollIntoView({block: 'center'})", word)
        word.click()
        assert focused_word(page) == ("stores", 2)
        boxes = page.execute_script(
            "const box = (e) => { const r = e.getBoundingClientRect(); return [r.top, r.bottom]; };"
            "return [box(document.activeElement), box(document.getElementById('scored-word-p')),"
            " box(document.getElementById('scored')), window.innerHeight];"
        )
        word, line, scored, height = boxes
        assert scored[1] > height  # the scored text runs past the window...
        assert word[0] >= 0 and word[1] <= height  # ...the focused word is in sight...
        assert line[0] >= 0 and line[1] <= height, boxes  # ...and so is its probability
        assert word_line(page) == expected_lines(model, TEXT)[2]
    finally:
        page.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        page.set_window_size(size["width"], size["height"])


def headings(driver) -> list[tuple[int, str]]:
    """The headings a screen reader can move among (level, name), in the page's order; lower case, as
    chromium names a heading in capitals when style.css shows it so (text-transform)."""
    nodes = driver.execute_cdp_cmd("Accessibility.getFullAXTree", {})["nodes"]
    found = []
    for node in nodes:
        if node.get("ignored") or node.get("role", {}).get("value") != "heading":
            continue
        level = next(p["value"]["value"] for p in node["properties"] if p["name"] == "level")
        found.append((level, node["name"]["value"].lower()))
    return found


def test_each_section_has_a_heading(page):
    """Below the h1, each section has an h2: visible where it had a visible title (the text boxes'
    labels, whose look is kept), hidden from the eye elsewhere; the boxes keep their names."""
    assert headings(page) == [(1, "nextword"), (2, "prompt"), (2, "generated text"), (2, "sampling")]
    assert ax_node(page, "prompt")["name"]["value"].lower() == "prompt"
    page.execute_script("document.querySelector('aside.controls').id = 'sampling'")
    sampling = ax_node(page, "sampling")
    assert (sampling["role"]["value"], sampling["name"]["value"]) == ("complementary", "Sampling")
    page.find_element(By.ID, "tab-score").click()
    assert headings(page) == [(1, "nextword"), (2, "text to score"), (2, "scored text")]
    assert ax_node(page, "score-text")["name"]["value"].lower() == "text to score"
    looks = (
        "return [...document.querySelectorAll('h2')].map((h) => { const s = getComputedStyle(h);"
        " return [h.textContent, h.className, h.offsetWidth, h.offsetHeight, s.fontSize, s.marginTop]; })"
    )
    page.find_element(By.ID, "tab-write").click()
    write = page.execute_script(looks)
    page.find_element(By.ID, "tab-score").click()
    score_view = page.execute_script(looks)
    shown = {text: rest for text, *rest in write + score_view if rest[2] > 0}
    assert set(shown) == {"Prompt", "Text to score", "Generated text", "Sampling", "Scored text"}
    for text, (kind, width, height, size, margin) in shown.items():
        if kind == "label":  # as the label looked: small capitals above its box, no margin above
            assert (size, margin) == ("12.8px", "0px") and height > 10, (text, size, margin, height)
        else:  # no room taken
            assert kind == "visually-hidden" and width <= 1 and height <= 1, (text, width, height)
