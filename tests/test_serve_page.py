"""The page in a real headless browser (chromium through selenium): type, suggest, generate, score."""

from __future__ import annotations

import dataclasses
import math
import re

import pytest

pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
pytest.importorskip("selenium", reason="install nextword[serve-test] (selenium) to test the page")

from browser import check_the_typed_text_is_shown, generate, wait
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys


def chip_words(driver) -> list[str]:
    """The suggested words on the page, read in one go (the chips are replaced as the user types)."""
    return driver.execute_script(
        "return [...document.querySelectorAll('#suggestions .chip-word')].map(e => e.textContent)"
    )


def alpha(color: str) -> float:
    """The opacity of a computed CSS colour, "rgba(232, 89, 12, 0.4)" or "rgb(...)"."""
    parts = re.findall(r"[\d.]+", color)
    return float(parts[3]) if len(parts) == 4 else 1.0


def set_slider(driver, element_id: str, value) -> None:
    """Move a range input the way a user's drag ends: set the value, fire the input event."""
    driver.execute_script(
        "const e = document.getElementById(arguments[0]); e.value = arguments[1];"
        "e.dispatchEvent(new Event('input', {bubbles: true}));",
        element_id,
        str(value),
    )


@pytest.fixture
def page(browser, live_server):
    browser.get(live_server.url + "/")
    wait(browser, lambda d: "tiny" in d.find_element(By.ID, "model-line").text, "the model line never loaded")
    return browser


def test_a_page_that_stays_with_the_server_loads_no_browser_runtime(page):
    """nextword-web's modules are imported when "Run in this browser" is turned on, not before."""
    loaded = page.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert any(url.endswith("/static/browser.js") for url in loaded), loaded
    assert not [url for url in loaded if "/static/web/" in url or "/static/ort/" in url], loaded


def test_type_a_prompt_pick_a_suggestion_and_generate_word_by_word(page, model):
    prompt = page.find_element(By.ID, "prompt")
    prompt.clear()
    prompt.send_keys("the neural")
    expected = [word for word, _ in model.next_words("the neural", k=8)]
    wait(
        page,
        lambda d: chip_words(d) == expected,
        "suggestions did not follow the typed prompt",
    )
    first = page.find_elements(By.CLASS_NAME, "chip")[0]
    first.click()
    assert prompt.get_attribute("value") == "the neural " + expected[0]
    after_pick = [word for word, _ in model.next_words("the neural " + expected[0], k=8)]
    wait(
        page,
        lambda d: chip_words(d) == after_pick,
        "suggestions did not update after the pick",
    )

    text = prompt.get_attribute("value")
    set_slider(page, "temperature", 0.7)
    set_slider(page, "words", 30)
    set_slider(page, "top-k", 10)
    assert page.find_element(By.ID, "temperature-value").text == "0.70"
    page.find_element(By.ID, "seed").send_keys("7")
    # Record how many words were on screen each time the output changed (words arrive one by one), and
    # what the screen readers' live region said meanwhile (the text once, when done; not word by word).
    page.execute_script(
        "window.seen = []; window.said = []; new MutationObserver(() => {"
        "const output = document.getElementById('output');"
        "window.seen.push(output.querySelectorAll('.word').length);"
        "}).observe(document.getElementById('output'), {childList: true, subtree: true});"
        "new MutationObserver(() => window.said.push(document.getElementById('output-said').textContent))"
        ".observe(document.getElementById('output-said'), {childList: true, subtree: true});"
    )
    page.find_element(By.ID, "generate").click()
    wait(page, lambda d: "words in" in d.find_element(By.ID, "status").text, "generation did not finish")
    generated = model.generate(text, max_words=30, temperature=0.7, top_k=10, seed=7)
    output = page.find_element(By.ID, "output")
    assert output.find_element(By.CLASS_NAME, "generated").get_attribute("textContent") == generated
    assert output.find_element(By.CLASS_NAME, "prompt-echo").get_attribute("textContent") == text
    seen = page.execute_script("return window.seen")
    words = len(output.find_elements(By.CLASS_NAME, "word"))
    assert words > 1 and sorted(set(seen))[-1] == words
    assert len({n for n in seen if 0 < n < words}) > 0  # the page showed part of the text before the end
    said = [text for text in page.execute_script("return window.said") if text]
    assert said == [generated]  # the generated words, said once
    assert output.get_attribute("aria-live") is None  # the streaming output is no live region

    # Keep text keeps what the output shows, the prompt it continues, even once the box says another
    prompt.send_keys(" and then")
    page.find_element(By.ID, "use-output").click()
    assert prompt.get_attribute("value") == text + generated


def test_a_seed_past_2_to_the_53_reaches_the_server_exactly(page, model):
    seed = 12345678901234567890  # a JavaScript number would round it to ...7168, JSON to ...7000
    text = generate(page, "a neural network", 15, 1.0, str(seed))
    assert text == model.generate("a neural network", max_words=15, temperature=1.0, seed=seed)


def test_score_shades_each_word_by_its_probability(page, model):
    page.find_element(By.ID, "tab-score").click()
    box = page.find_element(By.ID, "score-text")
    assert box.is_displayed() and not page.find_element(By.ID, "prompt").is_displayed()
    text = "The network stores the weights. The processor computes an error value."
    box.clear()
    box.send_keys(text)
    page.find_element(By.ID, "score-button").click()
    wait(page, lambda d: "perplexity" in d.find_element(By.ID, "score-summary").text, "no score shown")
    expected = model.score(text)
    words = page.find_elements(By.CLASS_NAME, "scored-word")
    assert [w.text.lower() for w in words] == [w.word for w in expected.words]
    probabilities = [float(w.get_attribute("data-probability")) for w in words]
    assert probabilities == pytest.approx([math.exp(w.logprob) for w in expected.words])
    shades = [alpha(w.value_of_css_property("background-color")) for w in words]  # as rendered
    order = sorted(range(len(words)), key=lambda i: probabilities[i])
    assert shades[order[0]] > shades[order[-1]]  # the least likely word is the most shaded
    assert f"perplexity {expected.perplexity:.1f}" in page.find_element(By.ID, "score-summary").text


def test_score_shows_the_text_as_typed(page, model):
    check_the_typed_text_is_shown(page, model)


def test_right_to_left_text_reads_right_to_left(page):
    """Hebrew, Arabic and Persian showed left to right: a sentence's final "?" sat beside its first word."""
    page.find_element(By.ID, "tab-score").click()
    text = "הילד קורא ספר?"
    page.execute_script("document.getElementById('score-text').value = arguments[0]", text)
    page.find_element(By.ID, "score-button").click()
    wait(page, lambda d: "perplexity" in d.find_element(By.ID, "score-summary").text, "no score shown")
    directions = page.execute_script(
        "return ['score-text', 'scored', 'prompt', 'output']"
        ".map((id) => getComputedStyle(document.getElementById(id)).direction);"
    )
    assert directions == ["rtl", "rtl", "ltr", "ltr"]  # the English prompt and output stay left to right
    spans = {w.text: w for w in page.find_elements(By.CLASS_NAME, "scored-word")}
    first, mark = spans["הילד"], spans["?"]
    assert mark.location["x"] < first.location["x"]  # the question mark ends the line on the left


def test_errors_show_on_the_page(page):
    page.find_element(By.ID, "tab-score").click()
    page.find_element(By.ID, "score-text").send_keys("the network stores the weights")
    page.find_element(By.ID, "score-button").click()
    wait(page, lambda d: d.find_elements(By.CLASS_NAME, "scored-word"), "the text was never scored")
    page.find_element(By.ID, "score-text").clear()
    page.find_element(By.ID, "score-button").click()
    wait(page, lambda d: "error" in d.find_element(By.ID, "score-summary").text, "no error shown")
    assert "no words to score" in page.find_element(By.ID, "score-summary").text
    assert not page.find_elements(By.CLASS_NAME, "scored-word")  # the last text's shading is gone
    # the only console error is the refused request itself
    assert all("400" in entry["message"] for entry in page.get_log("browser") if entry["level"] == "SEVERE")


def test_a_late_score_never_overwrites_a_newer_one(page, model):
    """A long text scored, then a short one: the long text's answer, arriving last, is dropped."""
    page.find_element(By.ID, "tab-score").click()
    page.execute_script(  # the server's answer about the long text is held back a second
        "const fetch = window.fetch; window.slowDone = false;"
        "window.fetch = async (url, init) => {"
        "  const answer = await fetch(url, init);"
        "  if (String(url).endsWith('v1/score') && init.body.includes('long text')) {"
        "    await new Promise((r) => setTimeout(r, 1000)); window.slowDone = true; }"
        "  return answer; };"
    )
    box = page.find_element(By.ID, "score-text")
    page.execute_script("arguments[0].value = 'a long text about the network'", box)
    page.find_element(By.ID, "score-button").click()
    page.execute_script("arguments[0].value = 'the weights'", box)
    page.find_element(By.ID, "score-button").click()
    wait(page, lambda d: d.execute_script("return window.slowDone"), "the long text was never answered")
    wait(page, lambda d: "perplexity" in d.find_element(By.ID, "score-summary").text, "no score shown")
    words = [w.text.lower() for w in page.find_elements(By.CLASS_NAME, "scored-word")]
    assert words == ["the", "weights"]
    assert (
        f"perplexity {model.score('the weights').perplexity:.1f}"
        in page.find_element(By.ID, "score-summary").text
    )


def test_the_keyboard_scores_and_keeps_its_focus(page):
    # Ctrl+Enter scores, as it generates in the prompt box
    page.find_element(By.ID, "tab-score").click()
    box = page.find_element(By.ID, "score-text")
    box.clear()
    box.send_keys("network")
    box.send_keys(Keys.CONTROL, Keys.ENTER)
    wait(
        page,
        lambda d: "perplexity" in d.find_element(By.ID, "score-summary").text,
        "Ctrl+Enter did not score",
    )
    assert page.find_element(By.ID, "score-summary").text.startswith("1 word ·")
    page.find_element(By.ID, "tab-write").click()
    # Generate, disabled while it runs, hands the focus to Stop, and Stop, hidden, back to Generate
    page.execute_script(
        "window.focused = []; document.addEventListener('focusin', (e) => window.focused.push(e.target.id));"
    )
    set_slider(page, "words", 1)
    page.find_element(By.ID, "generate").click()
    wait(page, lambda d: "in" in d.find_element(By.ID, "status").text.split(), "generation did not finish")
    assert page.find_element(By.ID, "status").text.startswith("1 word in ")
    assert page.execute_script("return window.focused") == ["generate", "stop", "generate"]
    assert page.execute_script("return document.activeElement.id") == "generate"
    # what changes by itself is announced: the generated text (once done), the result lines, the switch's and
    # the API key form's; not the chips, replaced at every key
    live = "return [...document.querySelectorAll('[aria-live]')].map((e) => e.id)"
    want = ["key-status", "output-said", "score-summary", "status", "where-status"]
    assert sorted(page.execute_script(live)) == want


def test_a_seed_the_box_cannot_read_is_refused(page, live_server):
    sent = "return performance.getEntriesByType('resource').map((e) => e.name)"
    before = page.execute_script(sent)
    seed = page.find_element(By.ID, "seed")
    seed.send_keys("1e400")  # past any number: the box holds no value, which once meant a random seed
    page.find_element(By.ID, "generate").click()
    status = page.find_element(By.ID, "status")
    assert status.text == "error: seed must be a whole number"
    assert page.execute_script(sent) == before  # nothing asked of the server
    # the field at fault is marked, and has the keyboard, until it is mended
    assert seed.get_attribute("aria-invalid") == "true"
    assert page.execute_script("return document.activeElement.id") == "seed"
    seed.send_keys(Keys.BACKSPACE * 5, "7")
    assert seed.get_attribute("aria-invalid") is None
    # error text is legible: WCAG AA's 4.5:1 on the card
    assert contrast(status.value_of_css_property("color"), card(page)) >= 4.5


def test_the_page_fits_a_narrow_window_with_long_words_and_errors(page):
    """A long error or an unbroken URL wraps inside its box: the page never gets wider than the window."""
    widths = (
        "return [document.documentElement.clientWidth, document.documentElement.scrollWidth,"
        " document.getElementById('output').clientWidth, document.getElementById('output').scrollWidth,"
        " document.getElementById('scored').clientWidth, document.getElementById('scored').scrollWidth]"
    )
    url = "see https://example.com/" + "a" * 150 + " for"
    try:
        for width in (360, 1280):
            metrics = {"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": width < 500}
            page.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
            page.execute_script("document.getElementById('prompt').value = arguments[0]", url)
            set_slider(page, "words", 3)
            page.find_element(By.ID, "generate").click()
            wait(page, lambda d: d.find_element(By.ID, "generate").is_enabled(), "generation did not finish")
            page.find_element(By.ID, "tab-score").click()
            page.execute_script("document.getElementById('score-text').value = arguments[0]", url)
            page.find_element(By.ID, "score-button").click()
            wait(page, lambda d: d.find_elements(By.CLASS_NAME, "scored-word"), "the text was never scored")
            page_width, page_scroll, *boxes = page.execute_script(widths)
            page.find_element(By.ID, "tab-write").click()
            output, output_scroll = page.execute_script(widths)[2:4]
            assert page_scroll <= page_width, (width, page_width, page_scroll)
            assert output_scroll <= output and boxes[1] <= boxes[0], (width, output, output_scroll, boxes)
        # a long error among the suggestions (a prompt over the server's cap) wraps too
        page.execute_script(
            "const box = document.getElementById('prompt'); box.value = 'x'.repeat(100001);"
            "box.dispatchEvent(new Event('input'));"
        )
        wait(page, lambda d: d.find_elements(By.CSS_SELECTOR, "#suggestions .error"), "no error shown")
        page_width, page_scroll = page.execute_script(widths)[:2]
        assert page_scroll <= page_width, (page_width, page_scroll)
        page.get_log("browser")  # the refused request (400) was the point: read, so no later test sees it
    finally:
        page.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_dark_mode_keeps_text_legible(live_server):
    """Dark mode: the least likely word's text on its full shade, and error text, reach 4.5:1."""
    from browser import new_browser

    dark = new_browser(dark=True)
    try:
        dark.get(live_server.url + "/")
        wait(dark, lambda d: "tiny" in d.find_element(By.ID, "model-line").text, "the page never loaded")
        word = dark.execute_script(
            "const word = document.createElement('span'); word.className = 'scored-word';"
            "word.textContent = 'unlikely'; word.style.setProperty('--s', '1');"
            "document.getElementById('scored').replaceChildren(word); return word;"
        )
        background = card(dark)
        assert luminance(background) < 0.05  # dark indeed
        shade = blend(word.value_of_css_property("background-color"), background)
        assert contrast(word.value_of_css_property("color"), shade) >= 4.5
        dark.execute_script("document.getElementById('status').classList.add('error')")
        error = dark.find_element(By.ID, "status").value_of_css_property("color")
        assert contrast(error, background) >= 4.5
    finally:
        dark.quit()


def test_the_words_slider_stays_within_the_servers_cap(browser, model):
    """nextword serve --max-words 20: the slider ends at 20, so that Generate works out of the box."""
    from browser import start_server

    from nextword.serve import ServeConfig, create_app

    server = start_server(create_app(ServeConfig(max_words=20), model))
    try:
        browser.get(server.url + "/")
        slider = browser.find_element(By.ID, "words")
        wait(browser, lambda d: slider.get_attribute("max") == "20", "the slider never took the cap")
        assert (
            slider.get_attribute("value") == "20" and browser.find_element(By.ID, "words-value").text == "20"
        )
        browser.find_element(By.ID, "generate").click()
        wait(browser, lambda d: d.find_element(By.ID, "generate").is_enabled(), "generation did not finish")
        assert "words in" in browser.find_element(By.ID, "status").text
    finally:
        server.stop()


def test_the_suggestions_stay_within_the_servers_cap(browser, model):
    """nextword serve --max-suggestions 3: the page asks for 3 words, not its usual 8 (which the server
    refused, so the chips' row showed the refusal instead), from the first request on."""
    from browser import start_server

    from nextword.serve import ServeConfig, create_app

    server = start_server(create_app(ServeConfig(max_suggestions=3), model))
    try:
        browser.get(server.url + "/")
        expected = [word for word, _ in model.next_words("a neural network", k=3)]
        wait(browser, lambda d: chip_words(d) == expected, "the capped suggestions never showed")
        assert not browser.find_elements(By.CSS_SELECTOR, "#suggestions .error")
        browser.find_element(By.ID, "prompt").send_keys(" for")
        expected = [word for word, _ in model.next_words("a neural network for", k=3)]
        wait(browser, lambda d: chip_words(d) == expected, "the suggestions did not follow the prompt")
    finally:
        server.stop()


def test_the_page_works_behind_a_path_prefix(browser, model):
    """A reverse proxy serving the app at /nextword/: the page's files, the API and the model file
    (run in this browser) are all fetched under that path."""
    from browser import start_server
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from nextword.serve import ServeConfig, create_app

    inner = create_app(ServeConfig(), model)
    proxy = Starlette(
        routes=[Mount("/nextword", app=inner)], lifespan=lambda _: inner.router.lifespan_context(inner)
    )
    server = start_server(proxy)
    try:
        browser.get(server.url + "/nextword/")
        wait(browser, lambda d: "tiny" in d.find_element(By.ID, "model-line").text, "the page never loaded")
        wait(browser, lambda d: chip_words(d), "no suggestions")
        browser.find_element(By.ID, "generate").click()
        wait(
            browser, lambda d: "words in" in d.find_element(By.ID, "status").text, "generation did not finish"
        )
        browser.find_element(By.ID, "in-browser").click()
        backend = "return document.body.dataset.backend"
        wait(browser, lambda d: d.execute_script(backend) == "browser", "not in the browser", 120)
        page = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        worker = browser.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "window.nextwordInBrowser.model.resources().then((r) => done(r.map((e) => e.name)));"
        )
        assert all(url.startswith(server.url + "/nextword/") for url in page + worker), page + worker
        assert server.url + "/nextword/model.onnx" in page  # the page fetches it for the worker
    finally:
        server.stop()


def card(driver) -> str:
    return driver.execute_script("return getComputedStyle(document.querySelector('.editor')).backgroundColor")


def rgba(color: str) -> tuple[float, float, float, float]:
    parts = [float(p) for p in re.findall(r"[\d.]+", color)]
    return (*parts[:3], parts[3] if len(parts) == 4 else 1.0)  # type: ignore[return-value]


def blend(color: str, under: str) -> str:
    """``color`` (maybe translucent) painted over the opaque ``under``."""
    r, g, b, a = rgba(color)
    r0, g0, b0, _ = rgba(under)
    return f"rgb({r * a + r0 * (1 - a)}, {g * a + g0 * (1 - a)}, {b * a + b0 * (1 - a)})"


def luminance(color: str) -> float:
    """WCAG's relative luminance of an opaque colour."""
    linear = [
        c / 255 / 12.92 if c / 255 <= 0.04045 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in rgba(color)[:3]
    ]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(one: str, other: str) -> float:
    light, dark = sorted((luminance(one), luminance(other)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_the_api_reference_link_opens_swagger_ui_from_this_server(page, live_server):
    page.find_element(By.LINK_TEXT, "API reference").click()
    paths = "return [...document.querySelectorAll('.opblock-summary-path')].map(e => e.textContent)"
    wait(
        page, lambda d: "/v1/completions" in d.execute_script(paths), "Swagger UI never listed the endpoints"
    )
    assert page.current_url == live_server.url + "/docs"
    loaded = page.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert f"{live_server.url}/static/docs/swagger-ui-bundle.js" in loaded
    assert all(url.startswith(live_server.url) for url in loaded), loaded  # nothing from a CDN
    assert not [entry for entry in page.get_log("browser") if entry["level"] == "SEVERE"]


# Decoding defaults a model file may carry that the page's controls must override: beam search (which
# cannot stream), several texts per prompt, top-k and top-p where the sliders say "off", and a
# min_words above the words slider.
FILE_DEFAULTS = [
    {"num_beams": 3, "num_return_sequences": 2, "max_words": 12},
    {"top_k": 2, "top_p": 0.5, "num_return_sequences": 3},
    {"min_words": 40, "max_words": 50},
]


@pytest.mark.parametrize("defaults", FILE_DEFAULTS)
def test_the_page_generates_what_its_controls_say_whatever_the_files_defaults(browser, model, defaults):
    """One sampled text, streamed, with the sliders' settings: "off" is off, not the file's value."""
    from browser import start_server

    from nextword.runtime import GenerationConfig, NextWordModel
    from nextword.serve import ServeConfig, create_app

    info = dataclasses.replace(model.info, generation=GenerationConfig(**defaults))
    special = NextWordModel(model.session, info, model.source)
    server = start_server(create_app(ServeConfig(), special))
    try:
        browser.get(server.url + "/")
        wait(browser, lambda d: "tiny" in d.find_element(By.ID, "model-line").text, "the page never loaded")
        prompt = browser.find_element(By.ID, "prompt")
        prompt.clear()
        prompt.send_keys("the system")
        for slider, value in (("temperature", 0.9), ("words", 20), ("top-k", 0), ("top-p", 1)):
            set_slider(browser, slider, value)
        browser.find_element(By.ID, "seed").send_keys("3")
        browser.find_element(By.ID, "generate").click()
        wait(browser, lambda d: "words in" in d.find_element(By.ID, "status").text, "generation never ended")
        shown = browser.execute_script("return document.querySelector('#output .generated').textContent")
        options = {"num_beams": 1, "num_return_sequences": 1, "top_k": None, "top_p": None}
        assert shown == special.generate("the system", max_words=20, temperature=0.9, seed=3, **options)
    finally:
        server.stop()


# Decoding defaults the sliders start at: values on the sliders' steps, then values between their steps
# and beyond their ends (a slider that rounded 0.73 to 0.75, or 500 to 100, would generate another text).
SLIDER_DEFAULTS = [
    ({"temperature": 0.5, "top_k": 7, "max_words": 25, "top_p": 0.9}, ["0.50", "25", "7", "0.90"]),
    ({"temperature": 0.73, "top_k": 500, "max_words": 300, "top_p": 0.93}, ["0.73", "300", "500", "0.93"]),
]


@pytest.mark.parametrize(("stored", "expected"), SLIDER_DEFAULTS)
def test_the_sliders_start_at_the_files_decoding_defaults(browser, model, stored, expected):
    from browser import start_server

    from nextword.runtime import GenerationConfig, NextWordModel
    from nextword.serve import ServeConfig, create_app

    defaults = GenerationConfig(**stored)
    special = NextWordModel(model.session, dataclasses.replace(model.info, generation=defaults), model.source)
    server = start_server(create_app(ServeConfig(), special))
    try:
        browser.get(server.url + "/")
        shown = (
            "return ['temperature', 'words', 'top-k', 'top-p']"
            ".map((id) => document.getElementById(`${id}-value`).textContent)"
        )
        wait(browser, lambda d: d.execute_script(shown) == expected, "sliders not set")
        values = (
            "return ['temperature', 'words', 'top-k', 'top-p'].map((i) => document.getElementById(i).value)"
        )
        assert [float(v) for v in browser.execute_script(values)] == [
            stored[k] for k in ("temperature", "max_words", "top_k", "top_p")
        ]
        prompt = browser.find_element(By.ID, "prompt")
        prompt.clear()
        prompt.send_keys("the system")
        browser.find_element(By.ID, "seed").send_keys("6")
        browser.find_element(By.ID, "generate").click()
        wait(browser, lambda d: "words in" in d.find_element(By.ID, "status").text, "generation never ended")
        text = browser.execute_script("return document.querySelector('#output .generated').textContent")
        assert text == special.generate("the system", seed=6)  # the file's defaults, as the sliders show
    finally:
        server.stop()
