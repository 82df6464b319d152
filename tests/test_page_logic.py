"""The page's logic where the network answers late, stops short or refuses, in a real headless chromium:
Keep text during a generation, suggestions for a prompt since changed, a stream the server cancelled or
one cut before its end, the API key form (a key no header carries, a second Enter while a key is
checked, a key the server no longer takes) and a "Run in this browser" switch the browser restored.
Where the server cannot be made to answer so on cue, a small wrapper of the page's ``fetch`` answers
instead (injected once the page has loaded: a later page load drops it)."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
pytest.importorskip("selenium", reason="install nextword[serve-test] (selenium) to test the page")

from browser import load, start_server, wait
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

KEY = "page-logic-key-123"
CHIP_WORDS = "return [...document.querySelectorAll('#suggestions .chip-word')].map((e) => e.textContent)"


@pytest.fixture
def page(browser, live_server):
    return load(browser, live_server.url)


@pytest.fixture(scope="module")
def keyed_server(model):
    """The app of a server started with --api-key KEY."""
    from nextword.serve import ServeConfig, create_app

    server = start_server(create_app(ServeConfig(api_keys=(KEY,)), model))
    yield server
    server.stop()


def suggested(model, prompt: str) -> list[str]:
    return [word for word, _ in model.next_words(prompt, k=8)]


def finished(driver) -> None:
    wait(driver, lambda d: d.find_element(By.ID, "generate").is_enabled(), "the generation never ended")


# ----------------------------------------------------------------------------- Keep text


def test_keep_text_waits_for_the_text_being_generated(page):
    """Keep text, enabled by a first text, is disabled as soon as a second one starts (kept midway, the
    second text's first words and its rest would part); once done, it keeps the text the output shows."""
    page.execute_script(
        "for (const [id, value] of [['words', 3], ['temperature', 0], ['top-k', 0], ['top-p', 1]])"
        "  document.getElementById(id).value = value;"
        "document.getElementById('generate').click();"
    )
    finished(page)
    assert page.find_element(By.ID, "use-output").is_enabled()  # the first text is there to keep
    keep_disabled = page.execute_script(
        "document.getElementById('prompt').value = 'the system';"
        "document.getElementById('generate').click();"  # generate() runs up to its first fetch
        "return document.getElementById('use-output').disabled;"
    )
    assert keep_disabled
    finished(page)
    page.find_element(By.ID, "use-output").click()
    shown = page.execute_script("return document.getElementById('output').textContent")
    assert shown.startswith("the system") and shown != "the system"
    assert page.execute_script("return document.getElementById('prompt').value") == shown


# ----------------------------------------------------------------------------- suggestions

# The server's answer about the prompt "the" is held until window.held.release(); window.parsed is set
# once the page has read it (the page's code that follows runs before the next timer's task).
HOLD_THE = """
const fetch = window.fetch;
window.held = null;
window.parsed = false;
window.fetch = (url, init) => {
  if (!String(url).endsWith('v1/suggest') || JSON.parse(init.body).prompt !== 'the') return fetch(url, init);
  return new Promise((resolve, reject) => {
    const release = () =>
      fetch(url, init).then((answer) => {
        const read = answer.json.bind(answer);
        answer.json = async () => {
          const body = await read();
          window.parsed = true;
          return body;
        };
        resolve(answer);
      }, reject);
    window.held = { signal: init.signal, release };
  });
};
"""

TYPE_THE = (
    "const prompt = document.getElementById('prompt');"
    "prompt.value = 'the'; prompt.dispatchEvent(new Event('input', {bubbles: true}));"
)


def hold_the_suggestions(driver) -> None:
    """The prompt "the" typed, its suggestions asked for and held."""
    driver.execute_script(HOLD_THE)
    driver.execute_script(TYPE_THE)
    wait(driver, lambda d: d.execute_script("return window.held !== null"), "no suggestions asked for 'the'")


def test_typing_drops_the_suggestions_asked_for_the_text_before(page, model):
    """A key typed while the suggestions for the prompt before are on their way cancels them at once,
    not only once the next request starts (SUGGEST_DELAY_MS later)."""
    hold_the_suggestions(page)
    aborted = page.execute_script(
        "const prompt = document.getElementById('prompt');"
        "prompt.value = 'the system'; prompt.dispatchEvent(new Event('input', {bubbles: true}));"
        "return window.held.signal.aborted;"
    )
    assert aborted
    want = suggested(model, "the system")
    wait(page, lambda d: d.execute_script(CHIP_WORDS) == want, "no suggestions for 'the system'")


def test_an_answer_about_a_prompt_since_changed_is_not_shown(page):
    """The prompt changed without an input event (by a script): the answer about the text before is
    dropped rather than shown as chips that would append to another text."""
    hold_the_suggestions(page)
    page.execute_script(
        "document.getElementById('prompt').value = 'the system';"
        "document.getElementById('suggestions').replaceChildren();"
    )
    shown = page.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "window.held.release();"
        "const chips = () => document.querySelectorAll('#suggestions .chip').length;"
        "const look = () => (window.parsed ? done(chips()) : setTimeout(look, 10));"
        "look();"
    )
    assert shown == 0


def test_a_chip_for_a_prompt_since_changed_appends_nothing(page, model):
    """A chip clicked once the prompt says something else than the text it was suggested after leaves the
    prompt as it is, and the chips for the prompt as it is now replace it."""
    prompt = page.execute_script(
        "const prompt = document.getElementById('prompt');"
        "prompt.value = 'the system';"  # the chips are still those of the prompt before
        "document.querySelector('#suggestions .chip').click();"
        "return prompt.value;"
    )
    assert prompt == "the system"
    want = suggested(model, "the system")
    wait(page, lambda d: d.execute_script(CHIP_WORDS) == want, "no suggestions for 'the system'")


# ----------------------------------------------------------------------------- streams

EVENT = 'data: {"choices":[{"index":0,"text":%s,"finish_reason":%s,"end_reason":%s}]}\n\n'
WORDS = EVENT % ('" the"', "null", "null") + EVENT % ('" network"', "null", "null")
DONE = "data: [DONE]\n\n"


@pytest.mark.parametrize(
    ("stream", "status", "failed"),
    [
        (WORDS + EVENT % ('" is"', '"length"', '"length"') + DONE, "3 words in", False),
        (
            WORDS + EVENT % ('""', '"stop"', '"cancelled"') + DONE,
            "error: the server stopped the generation (it is shutting down)",
            True,
        ),
        (WORDS, "error: the connection to the server was lost", True),
    ],
    ids=["ended", "cancelled-by-a-drain", "cut-before-done"],
)
def test_a_stream_that_stops_short_says_so(page, stream, status, failed):
    """A stream the server cancelled (end_reason "cancelled": it is shutting down) and one whose body ends
    before `data: [DONE]` are errors, not a text the model finished; the words that came stay shown."""
    page.execute_script(
        "const [stream] = arguments; const fetch = window.fetch;"
        "window.fetch = (url, init) => String(url).endsWith('v1/completions')"
        "  ? Promise.resolve(new Response(stream, {headers: {'content-type': 'text/event-stream'}}))"
        "  : fetch(url, init);"
        "document.getElementById('prompt').value = 'a';"
        "document.getElementById('generate').click();",
        stream,
    )
    finished(page)
    said = page.find_element(By.ID, "status")
    assert said.text.startswith(status)
    assert ("error" in said.get_attribute("class").split()) == failed
    assert page.execute_script("return document.querySelector('#output .generated').textContent").startswith(
        " the network"
    )


# ----------------------------------------------------------------------------- the API key


def key_form(driver, server) -> None:
    """The page of ``server`` in a tab that has kept no key, asking for one."""
    driver.get(server.url + "/")
    driver.execute_script("sessionStorage.clear()")
    driver.get(server.url + "/")
    form = driver.find_element(By.ID, "key-form")
    wait(driver, lambda d: form.is_displayed(), "the page never asked for the key")


def stored_key(driver) -> str | None:
    return driver.execute_script("return sessionStorage.getItem('nextword-api-key')")


def test_a_key_no_header_can_carry_is_refused_in_the_form(browser, keyed_server):
    """A key with a character past ASCII is refused by the form itself (fetch would throw building its
    header, which once read as a server that cannot be reached, and the key was kept, locking the tab);
    one kept by such a page before is asked for again."""
    key_form(browser, keyed_server)
    browser.execute_script("document.getElementById('api-key').value = 's3cret€'")
    browser.find_element(By.CSS_SELECTOR, "#key-form button").click()
    status = browser.find_element(By.ID, "key-status")
    wait(browser, lambda d: "ASCII" in status.text, "the key was not refused")
    assert "error" in status.get_attribute("class").split()
    assert browser.find_element(By.ID, "key-form").is_displayed() and stored_key(browser) is None

    browser.execute_script("sessionStorage.setItem('nextword-api-key', 'k€y')")  # kept before the fix
    browser.refresh()
    wait(browser, lambda d: d.find_element(By.ID, "key-form").is_displayed(), "the kept key was taken")
    assert browser.find_element(By.ID, "key-status").text == "The key this tab kept is no longer accepted."
    browser.find_element(By.ID, "api-key").send_keys(KEY, Keys.ENTER)
    wait(browser, lambda d: "tiny" in d.find_element(By.ID, "model-line").text, "the model line never loaded")
    assert stored_key(browser) == KEY


def test_two_servers_under_prefixes_of_one_origin_keep_their_own_keys(browser, model):
    """The tab kept one key under one name for the whole origin: a second server behind the same proxy
    (/b/ beside /a/) found the first one's key refused, and once given its own, the first asked again."""
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from nextword.serve import ServeConfig, create_app

    apps = {name: create_app(ServeConfig(api_keys=(f"{KEY}-{name}",)), model) for name in ("a", "b")}
    server = start_server(Starlette(routes=[Mount(f"/{name}", app=app) for name, app in apps.items()]))
    try:
        browser.get(server.url + "/a/")
        browser.execute_script("sessionStorage.clear()")
        for name in ("a", "b"):
            browser.get(f"{server.url}/{name}/")
            asking = lambda d: d.find_element(By.ID, "key-form").is_displayed()  # noqa: E731
            wait(browser, asking, f"/{name}/ never asked for its key")
            assert browser.find_element(By.ID, "key-status").text == ""  # nothing kept was refused
            browser.find_element(By.ID, "api-key").send_keys(f"{KEY}-{name}", Keys.ENTER)
            wait(
                browser,
                lambda d: "tiny" in d.find_element(By.ID, "model-line").text,
                f"/{name}/ never loaded",
            )
        browser.get(server.url + "/a/")  # its key still kept
        wait(browser, lambda d: "tiny" in d.find_element(By.ID, "model-line").text, "/a/ asked again")
        assert not browser.find_element(By.ID, "key-form").is_displayed()
        kept = browser.execute_script(
            "return ['/a/', '/b/'].map((path) => sessionStorage.getItem('nextword-api-key ' + path))"
        )
        assert kept == [f"{KEY}-a", f"{KEY}-b"]
    finally:
        server.stop()


def test_a_second_enter_while_the_key_is_checked_keeps_the_page(browser, keyed_server):
    """Enter pressed again while the key is being checked submits nothing natively (that reloaded the
    page): every submission of the key form is the page's own."""
    key_form(browser, keyed_server)
    browser.execute_script(  # the key's check waits for window.go(); each submission is recorded
        "const fetch = window.fetch; window.checks = [];"
        "window.fetch = (url, init) => new Promise((resolve, reject) =>"
        "  window.checks.push(() => fetch(url, init).then(resolve, reject)));"
        "window.go = () => { window.fetch = fetch; for (const check of window.checks) check(); };"
        "window.submits = [];"
        "window.addEventListener('submit', (event) => {"
        "  window.submits.push(event.defaultPrevented); event.preventDefault(); });"
    )
    field = browser.find_element(By.ID, "api-key")
    field.send_keys(KEY, Keys.ENTER)
    wait(browser, lambda d: d.execute_script("return window.checks.length") == 1, "the key was never checked")
    assert browser.find_element(By.ID, "key-status").text == "Checking the key…"
    field.send_keys(Keys.ENTER)
    assert browser.execute_script("return window.submits") == [True, True]
    browser.execute_script("window.go()")
    wait(browser, lambda d: "tiny" in d.find_element(By.ID, "model-line").text, "the model line never loaded")
    assert stored_key(browser) == KEY


def test_a_key_refused_after_the_page_started_asks_for_a_reload(page):
    """A 401 once the page has started (the server restarted with other keys): the tab forgets its key and
    says to reload, where the page asks for the new one, rather than the server's words at each action."""
    page.execute_script(
        "sessionStorage.setItem('nextword-api-key', 'old-key');"
        "const fetch = window.fetch;"
        "const refusal = {error: {message: 'the API key sent is not one this server takes'}};"
        "window.fetch = (url, init) => /v1\\/(completions|suggest)$/.test(String(url))"
        "  ? Promise.resolve(new Response(JSON.stringify(refusal),"
        "      {status: 401, headers: {'content-type': 'application/json'}}))"
        "  : fetch(url, init);"
        "document.getElementById('generate').click();"
    )
    finished(page)
    assert page.find_element(By.ID, "status").text == (
        "error: the server asks for another API key now (it may have restarted): reload the page to enter it"
    )
    assert stored_key(page) is None
    page.execute_script("window.sessionStorage.clear()")


def test_a_model_file_refused_for_the_key_asks_for_a_reload(browser, keyed_server):
    """The "Run in this browser" switch, on a server started with --api-key, fetches model.onnx with the
    tab's key: a 401 there (the server restarted with other keys between its model line and the download)
    is said as every other refusal of the key is, and the key forgotten, rather than as a bare status."""
    key_form(browser, keyed_server)
    browser.find_element(By.ID, "api-key").send_keys(KEY, Keys.ENTER)
    wait(browser, lambda d: "tiny" in d.find_element(By.ID, "model-line").text, "the model line never loaded")
    browser.execute_script(
        "const fetch = window.fetch;"
        "window.fetch = (url, init) => /model[.]onnx$/.test(String(url))"
        "  ? Promise.resolve(new Response('{}', {status: 401}))"
        "  : fetch(url, init);"
        "document.getElementById('in-browser').click();"
    )
    status = browser.find_element(By.ID, "where-status")
    wait(browser, lambda d: status.text.startswith("Cannot run"), "the download's refusal was not said")
    assert status.text == (
        "Cannot run in this browser: the server asks for another API key now (it may have restarted): "
        "reload the page to enter it"
    )
    assert not browser.find_element(By.ID, "in-browser").is_selected()
    assert stored_key(browser) is None


# ----------------------------------------------------------------------------- run in this browser

# The switch checked as soon as it is parsed, as a browser restoring a form's state does (back, forward,
# Firefox's reload), before the page's scripts run.
RESTORE_CHECKED = """
new MutationObserver((_, observer) => {
  const toggle = document.getElementById('in-browser');
  if (!toggle) return;
  toggle.checked = true;
  observer.disconnect();
}).observe(document, { childList: true, subtree: true });
"""


def test_a_switch_restored_checked_is_turned_off(browser, live_server):
    """The page starts with the server: a "Run in this browser" switch found checked (the browser kept
    its state) is turned off, not shown on while nothing runs in the browser; and the browser is told
    not to keep it (autocomplete="off")."""
    added = browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RESTORE_CHECKED})
    try:
        load(browser, live_server.url)
    finally:
        browser.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", added)
    toggle = browser.find_element(By.ID, "in-browser")
    assert not toggle.is_selected()
    assert browser.find_element(By.ID, "where-status").text == "Words are generated on the server."
    assert toggle.get_attribute("autocomplete") == "off"
