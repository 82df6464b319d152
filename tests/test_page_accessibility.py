"""The page as a keyboard, a screen reader, a phone and a colour-blind eye meet it, in a real headless
chromium: arrow keys in the tabs and among the suggestions, what the accessibility tree says (through
the DevTools protocol), contrast in light and dark, reduced motion, a 360 px window, errors announced."""

from __future__ import annotations

import math
import re

import pytest

pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
pytest.importorskip("selenium", reason="install nextword[serve-test] (selenium) to test the page")

from browser import ax_node, load, press, shift_tab, wait
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys


@pytest.fixture
def page(browser, live_server):
    return load(browser, live_server.url)


def focused(driver) -> str:
    return driver.execute_script(
        "const e = document.activeElement; return e.id || e.className + ':' + e.textContent"
    )


def texts_read(driver) -> list[str]:
    """Every text the accessibility tree holds (what a screen reader can read), in no particular order."""
    nodes = driver.execute_cdp_cmd("Accessibility.getFullAXTree", {})["nodes"]
    return [
        n["name"]["value"]
        for n in nodes
        if n.get("role", {}).get("value") == "StaticText" and not n.get("ignored") and "name" in n
    ]


def rgba(color: str) -> tuple[float, float, float, float]:
    parts = [float(p) for p in re.findall(r"[\d.]+", color)]
    return (*parts[:3], parts[3] if len(parts) == 4 else 1.0)  # type: ignore[return-value]


def luminance(color: str, under: str = "rgb(255, 255, 255)") -> float:
    """WCAG's relative luminance of ``color`` painted over the opaque ``under``."""
    r, g, b, a = rgba(color)
    base = rgba(under)
    channels = [c * a + c0 * (1 - a) for c, c0 in zip((r, g, b), base[:3], strict=True)]
    linear = [c / 255 / 12.92 if c / 255 <= 0.04045 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(one: str, other: str) -> float:
    light, dark = sorted((luminance(one, other), luminance(other)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_the_tabs_are_one_tab_stop_and_follow_the_arrow_keys(page):
    """WAI-ARIA's tabs: Tab reaches the selected tab only; the arrow keys, Home and End select another."""
    page.find_element(By.ID, "tab-write").click()
    press(page, Keys.ARROW_RIGHT)
    assert focused(page) == "tab-score"
    selected = (
        "return [...document.querySelectorAll('[role=tab]')].map((t) => [t.id, t.ariaSelected, t.tabIndex])"
    )
    assert page.execute_script(selected) == [["tab-write", "false", -1], ["tab-score", "true", 0]]
    assert (
        page.find_element(By.ID, "score").is_displayed()
        and not page.find_element(By.ID, "write").is_displayed()
    )
    press(page, Keys.TAB)
    assert focused(page) == "score-text"  # from the selected tab straight into its panel
    shift_tab(page)
    press(page, Keys.HOME)
    assert focused(page) == "tab-write" and page.find_element(By.ID, "write").is_displayed()
    press(page, Keys.END)
    assert focused(page) == "tab-score"
    press(page, Keys.ARROW_RIGHT)  # past the last: the first
    assert focused(page) == "tab-write"


def test_the_suggestions_are_one_tab_stop_among_which_the_arrows_move(page):
    """Eight chips were eight Tab stops between the prompt and Generate: now one, a toolbar."""
    page.find_element(By.ID, "prompt").click()
    words = "return [...document.querySelectorAll('#suggestions .chip-word')].map((e) => e.textContent)"
    chips = page.execute_script(words)
    assert len(chips) > 2
    press(page, Keys.TAB)
    assert focused(page).endswith(chips[0] + page.find_elements(By.CLASS_NAME, "chip-p")[0].text)
    press(page, Keys.ARROW_RIGHT, Keys.ARROW_RIGHT)
    assert chips[2] in focused(page)
    press(page, Keys.END)
    assert chips[-1] in focused(page)
    press(page, Keys.TAB)
    assert focused(page) == "generate"
    shift_tab(page)
    assert chips[-1] in focused(page)  # back to the chip last moved to
    toolbar = ax_node(page, "suggestions")
    assert (toolbar["role"]["value"], toolbar["name"]["value"]) == ("toolbar", "Next word")
    # Ctrl+Enter (generate, score) is told to a screen reader where it works: in the text boxes, not on
    # the buttons it stands for (pressed on a slider it does nothing)
    shortcuts = {p["name"]: p["value"].get("value") for p in ax_node(page, "prompt")["properties"]}
    assert "Control+Enter" in shortcuts.get("keyshortcuts", "")
    assert "Control+Enter" in page.find_element(By.ID, "score-text").get_attribute("aria-keyshortcuts")
    claimed = "return [...document.querySelectorAll('[aria-keyshortcuts]')].map((e) => e.id).sort()"
    assert page.execute_script(claimed) == ["prompt", "score-text"]


def test_the_sliders_say_what_they_show_and_only_once(page):
    """Top-k at 0 shows "off": the slider says "off", not 0; the value beside it is no second live region."""
    for element_id, value, shown in (
        ("top-k", 0, "off"),
        ("top-p", 1, "off"),
        ("temperature", 0, "0 (greedy)"),
    ):
        page.execute_script(
            "const e = document.getElementById(arguments[0]); e.value = arguments[1];"
            "e.dispatchEvent(new Event('input', {bubbles: true}));",
            element_id,
            str(value),
        )
        assert page.find_element(By.ID, f"{element_id}-value").text == shown
        assert page.find_element(By.ID, element_id).get_attribute("aria-valuetext") == shown
        # an <output> is a live region: it would say every step of a drag over the slider's own value
        assert ax_node(page, f"{element_id}-value").get("ignored"), element_id
        # the hint below the slider is its description, read with it (not text a reader meets elsewhere)
        hint = page.find_element(By.ID, f"{element_id}-hint").text
        assert hint and ax_node(page, element_id)["description"]["value"] == hint, element_id


def test_placeholders_text_boxes_and_the_selected_tab_stand_out(live_server):
    """WCAG AA, light and dark: placeholder text 4.5:1 on its box; a text box's edge and the selected
    tab's 3:1 on what surrounds them (1.4.11: a user must see where to type, and which tab is on)."""
    from browser import new_browser

    for dark in (False, True):
        driver = new_browser(dark=dark)
        try:
            load(driver, live_server.url)
            style = (
                "return getComputedStyle(document.querySelector(arguments[0]), arguments[1])[arguments[2]]"
            )
            card = driver.execute_script(style, ".editor", None, "backgroundColor")
            assert (luminance(card) < 0.05) == dark
            for box in ("#prompt", "#seed"):
                driver.execute_script("document.querySelector(arguments[0]).value = ''", box)
                placeholder = driver.execute_script(style, box, "::placeholder", "color")
                background = driver.execute_script(style, box, None, "backgroundColor")
                assert contrast(placeholder, background) >= 4.5, (dark, box, placeholder)
                edge = driver.execute_script(style, box, None, "borderTopColor")
                assert contrast(edge, card) >= 3, (dark, box, edge)
            tablist = driver.execute_script(style, ".tabs", None, "backgroundColor")
            edge = driver.execute_script(style, '[aria-selected="true"]', None, "borderTopColor")
            assert contrast(edge, tablist) >= 3, (dark, edge, tablist)
        finally:
            driver.quit()


def test_reduced_motion_stills_the_caret_and_the_arriving_words(page):
    page.execute_script(
        "const out = document.getElementById('output');"
        'out.innerHTML = \'<span class="word fresh">word</span><span class="caret"></span>\';'
    )
    animation = "return getComputedStyle(document.querySelector(arguments[0])).animationName"
    assert page.execute_script(animation, ".caret") == "blink"  # motion as usual
    page.execute_cdp_cmd(
        "Emulation.setEmulatedMedia", {"features": [{"name": "prefers-reduced-motion", "value": "reduce"}]}
    )
    try:
        assert page.execute_script(animation, ".caret") == "none"
        assert page.execute_script(animation, ".word.fresh") == "none"
    finally:
        page.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})


def test_a_high_contrast_theme_keeps_the_selected_tab_and_the_shading(page):
    """Windows' high-contrast themes (forced colours) drop backgrounds, shadows and border colours: the
    two tabs looked the same, and the score view's shading and its ramp were gone."""
    page.find_element(By.ID, "tab-score").click()
    page.execute_script("document.getElementById('score-text').value = 'the network zzzz stores'")
    page.find_element(By.ID, "score-button").click()
    wait(page, lambda d: d.find_elements(By.CLASS_NAME, "scored-word"), "the text was never scored")
    style = "return getComputedStyle(document.querySelector(arguments[0]))[arguments[1]]"
    shades = (
        "return [...document.querySelectorAll('.scored-word')]"
        ".map((e) => getComputedStyle(e).backgroundColor)"
    )
    features = [{"name": "forced-colors", "value": "active"}]
    page.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": features})
    try:
        assert page.execute_script("return matchMedia('(forced-colors: active)').matches")
        on, off = '[aria-selected="true"]', '[aria-selected="false"]'
        assert page.execute_script(style, on, "fontWeight") != page.execute_script(style, off, "fontWeight")
        assert "underline" in page.execute_script(style, on, "textDecorationLine")
        assert "underline" not in page.execute_script(style, off, "textDecorationLine")
        assert len(set(page.execute_script(shades))) > 1  # shades that differ, the unknown word's darkest
        assert page.execute_script(style, ".ramp", "backgroundImage").startswith("linear-gradient")
    finally:
        page.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})


def test_a_phone_wide_window_has_targets_a_finger_can_hit(page):
    """360 px wide (and 320, a 1280 px window at 400 %): every control is at least 24 px square (WCAG
    2.5.8; the links inside the footer's sentence are exempt), the chips run several to a line beneath
    their label rather than one a line beside it, and the page never scrolls sideways."""
    sizes = (
        "return [...document.querySelectorAll('button, input, textarea, label.switch')]"
        ".filter((e) => e.offsetParent && e.type !== 'checkbox')"  # the checkbox's target is its label
        ".map((e) => [e.id || e.className, e.offsetWidth, e.offsetHeight])"
    )
    try:
        for width in (360, 320):
            metrics = {"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": True}
            page.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
            small = [s for s in page.execute_script(sizes) if min(s[1], s[2]) < 24]
            assert not small, (width, small)
            tops = [chip.location["y"] for chip in page.find_elements(By.CLASS_NAME, "chip")]
            if width == 360:  # 320 px: room for one chip a line
                assert len(set(tops)) < len(tops), tops
            scroll = "return [document.documentElement.clientWidth, document.documentElement.scrollWidth]"
            client, scrolled = page.execute_script(scroll)
            assert scrolled <= client, (width, client, scrolled)
    finally:
        page.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_each_scored_word_says_its_probability_not_only_its_shade(page, model):
    """The score view's shade is colour alone: a screen reader reads each word's probability after it,
    while the text as shown and as copied stays the text typed."""
    page.find_element(By.ID, "tab-score").click()
    text = "the network stores the weights"
    page.execute_script("document.getElementById('score-text').value = arguments[0]", text)
    page.find_element(By.ID, "score-button").click()
    wait(page, lambda d: d.find_elements(By.CLASS_NAME, "scored-word"), "the text was never scored")
    said = [t for t in texts_read(page) if t.startswith("(p = ")]
    expected = [
        f"(p = {math.exp(w.logprob):.3f})" if w.logprob >= math.log(0.001) else None
        for w in model.score(text).words
    ]
    assert len(said) == len(expected) == 5
    assert all(e is None or e in said for e in expected), (said, expected)
    assert page.execute_script("return document.getElementById('scored').textContent") == text
    assert page.find_element(By.ID, "scored").text == text


def test_errors_are_announced_in_words_a_user_understands(browser, model):
    """The server stops under the page: the suggestions say so once (an alert, not at every key), and
    Generate says the server cannot be reached rather than the browser's "Failed to fetch"; a proxy's 503
    page reads as a sentence, not "HTTP 503". The model line, loading or failing, is a live region."""
    from browser import start_server

    from nextword.serve import ServeConfig, create_app

    server = start_server(create_app(ServeConfig(), model))
    try:
        load(browser, server.url)
        assert ax_node(browser, "model-line")["role"]["value"] == "status"
    finally:
        server.stop()
    prompt = browser.find_element(By.ID, "prompt")
    prompt.send_keys(" x")
    alert = "#suggestions [role=alert]"
    wait(
        browser,
        lambda d: d.find_elements(By.CSS_SELECTOR, alert),
        "the suggestions' error was never announced",
    )
    assert "cannot reach the server" in browser.find_element(By.CSS_SELECTOR, alert).text
    browser.execute_script("document.querySelector(arguments[0]).said = true", alert)
    prompt.send_keys("y")
    browser.execute_script("return new Promise((r) => setTimeout(r, 500))")  # past the suggestions' delay
    assert browser.execute_script("return document.querySelector(arguments[0]).said", alert)  # not said again
    browser.find_element(By.ID, "generate").click()
    status = browser.find_element(By.ID, "status")
    wait(browser, lambda d: "error" in status.text, "Generate never failed")
    assert status.text.startswith("error: cannot reach the server"), status.text
    assert status.get_attribute("aria-live") == "polite"
    browser.execute_script(  # a proxy in front of the server answers its own page
        "window.fetch = async () => new Response('<h1>Service Unavailable</h1>',"
        " {status: 503, headers: {'content-type': 'text/html'}});"
    )
    browser.find_element(By.ID, "tab-score").click()
    browser.find_element(By.ID, "score-button").click()
    summary = browser.find_element(By.ID, "score-summary")
    wait(browser, lambda d: "error" in summary.text, "Score never failed")
    assert summary.text == "error: the server is unavailable or starting; retry shortly (HTTP 503)"
    browser.get_log("browser")  # the refused requests were the point
