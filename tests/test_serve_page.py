"""The page in a real headless browser (chromium through selenium): type, suggest, generate, score."""

from __future__ import annotations

import dataclasses
import math
import re

import pytest

pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
pytest.importorskip("selenium", reason="install nextword[serve-test] (selenium) to test the page")

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

TIMEOUT = 20


def wait(driver, condition, message: str):
    return WebDriverWait(driver, TIMEOUT).until(lambda d: condition(d), message)


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
    # Record how many words were on screen each time the output changed: words arrive one by one.
    page.execute_script(
        "window.seen = []; new MutationObserver(() => window.seen.push("
        "document.querySelectorAll('#output .word').length)).observe("
        "document.getElementById('output'), {childList: true, subtree: true});"
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

    page.find_element(By.ID, "use-output").click()
    assert prompt.get_attribute("value") == text + generated


def test_a_seed_past_2_to_the_53_reaches_the_server_exactly(page, model):
    from test_serve_browser_mode import generate

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
