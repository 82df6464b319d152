"""Security headers (serve/headers.py): nosniff, no Referer and no framing on every answer, refusals and
CORS preflights included; a Content-Security-Policy on the page and on /docs that allows their inline
scripts by hash only, under --root-path too; and, in a real headless chromium, the page (on the server
and in the browser) and /docs doing their main actions with no violation of it, while a script or an
event handler injected into the page is blocked."""

from __future__ import annotations

import base64
import hashlib
from html.parser import HTMLParser

import pytest

pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
pytest.importorskip("httpx", reason="install nextword[serve-test] to test the server")

from fastapi.testclient import TestClient
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from nextword.serve import ServeConfig, create_app
from nextword.serve.headers import FALLBACK_POLICY, SecurityHeaders, script_hash

COMMON = {"x-content-type-options": "nosniff", "referrer-policy": "no-referrer", "x-frame-options": "DENY"}
PREFIX = "/nextword"
ORIGIN = "http://localhost:5173"


@pytest.fixture(scope="module")
def client(model):
    with TestClient(create_app(ServeConfig(max_body_bytes=300), model)) as c:
        yield c


def check_common(response) -> None:
    for name, value in COMMON.items():
        assert response.headers.get(name) == value, (response.request.url, name, dict(response.headers))


def policy(response) -> dict[str, list[str]]:
    """A response's Content-Security-Policy, directive by directive."""
    directives = [part.split() for part in response.headers["content-security-policy"].split(";")]
    return {name: sources for name, *sources in directives}


class _Scripts(HTMLParser):
    """The text of each inline <script> of a page (read apart from serve/headers.py's own reading)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.inline: list[str] = []
        self._in: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "script" and not any(name == "src" for name, _ in attrs):
            self._in = []

    def handle_data(self, data: str) -> None:
        if self._in is not None:
            self._in.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._in is not None:
            self.inline.append("".join(self._in))
            self._in = None


def inline_hashes(html: str) -> set[str]:
    parser = _Scripts()
    parser.feed(html)
    return {
        f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"
        for script in parser.inline
    }


def test_script_hash_is_the_csp_source_of_the_text():
    assert script_hash("") == "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"  # SHA-256 of nothing
    assert script_hash("é") == inline_hashes("<script>é</script>").pop()  # of the UTF-8 bytes


@pytest.mark.parametrize(
    "path", ["/", "/docs", "/health", "/v1/models", "/openapi.json", "/static/app.js", "/model.onnx"]
)
def test_every_answer_is_nosniff_sends_no_referrer_and_may_not_be_framed(client, path):
    response = client.get(path)
    assert response.status_code == 200
    check_common(response)
    head = client.head(path)
    check_common(head)
    if path not in ("/", "/docs"):  # JSON, scripts, files: no page, no policy
        assert "content-security-policy" not in response.headers


def test_refusals_and_streams_carry_them_too(client):
    missing = client.get("/no/such/page")
    assert missing.status_code == 404
    invalid = client.post("/v1/completions", json={"prompt": "the", "max_tokens": "many"})
    assert invalid.status_code in (400, 422)
    too_big = client.post("/v1/completions", json={"prompt": "a" * 500})
    assert too_big.status_code == 413
    slots = client.app.state.nextword.slots
    for _ in range(slots.limit):  # every slot taken: the next request is refused
        slots.acquire()
    try:
        busy = client.post("/v1/score", json={"text": "the network"})
    finally:
        for _ in range(slots.limit):
            slots.release()
    assert busy.status_code == 429
    body = {"prompt": "the network", "max_tokens": 3, "stream": True}
    with client.stream("POST", "/v1/completions", json=body) as streamed:
        assert streamed.status_code == 200 and "".join(streamed.iter_text()).endswith("[DONE]\n\n")
    for response in (missing, invalid, too_big, busy, streamed):
        check_common(response)
        assert "content-security-policy" not in response.headers


def test_a_refusal_for_a_missing_key_carries_them(model):
    with TestClient(create_app(ServeConfig(api_keys=("test-key-123",)), model)) as c:
        refused = c.post("/v1/score", json={"text": "the"})
        assert refused.status_code == 401
        check_common(refused)
        page = c.get("/")  # the page asks for the key itself
        assert page.status_code == 200 and "content-security-policy" in page.headers


def test_the_page_runs_only_its_own_scripts(client):
    page = client.get("/")
    csp = policy(page)
    assert csp["default-src"] == ["'none'"]
    hashes = inline_hashes(page.text)
    assert len(hashes) == 1  # the page's module script, inline
    assert set(csp["script-src"]) == {"'self'", "'wasm-unsafe-eval'", *hashes}
    assert csp["worker-src"] == ["'self'"]  # "run in this browser": its worker, from here, not a blob:
    assert csp["connect-src"] == ["'self'"] and csp["style-src"] == ["'self'"]
    assert csp["img-src"] == ["'self'", "data:"]
    assert csp["frame-ancestors"] == ["'none'"] and csp["base-uri"] == ["'none'"]
    assert csp["object-src"] == ["'none'"] and csp["form-action"] == ["'self'"]
    assert "'unsafe-inline'" not in page.headers["content-security-policy"]
    assert "'unsafe-eval'" not in page.headers["content-security-policy"]
    assert client.head("/").headers["content-security-policy"] == page.headers["content-security-policy"]


def test_docs_allow_swagger_uis_set_up_script_by_its_hash(client):
    docs = client.get("/docs")
    csp = policy(docs)
    hashes = inline_hashes(docs.text)
    assert len(hashes) == 1  # Swagger UI's set-up, as FastAPI writes it
    assert set(csp["script-src"]) == {"'self'", *hashes}  # no WebAssembly there
    assert "worker-src" not in csp and csp["default-src"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"] and csp["connect-src"] == ["'self'"]
    assert "'unsafe-inline'" not in docs.headers["content-security-policy"]


def test_under_a_root_path_the_policies_follow_the_pages(model, client):
    """With --root-path the page gets a second inline script (the one that adds its slash) and /docs
    names the prefix in its set-up script: each policy has the hashes of what its page holds."""
    plain_docs = client.get("/docs").headers["content-security-policy"]
    with TestClient(create_app(ServeConfig(root_path=PREFIX), model), root_path=PREFIX) as c:
        page, docs = c.get("/"), c.get("/docs")
        assert len(inline_hashes(page.text)) == 2
        assert set(policy(page)["script-src"]) == {"'self'", "'wasm-unsafe-eval'", *inline_hashes(page.text)}
        assert f"{PREFIX}/openapi.json" in docs.text
        assert set(policy(docs)["script-src"]) == {"'self'", *inline_hashes(docs.text)}
        assert docs.headers["content-security-policy"] != plain_docs
        for response in (page, docs, c.get("/v1/models"), c.get("/nope")):
            check_common(response)


def test_cors_preflights_and_refusals_keep_their_cors_headers_and_get_these(model):
    config = ServeConfig(cors_origins=(ORIGIN,), max_body_bytes=200)
    with TestClient(create_app(config, model)) as c:
        preflight = c.options(
            "/v1/completions",
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type, authorization",
            },
        )
        assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == ORIGIN
        origin = {"Origin": ORIGIN}
        done = c.post("/v1/score", json={"text": "the network"}, headers=origin)
        too_big = c.post("/v1/completions", json={"prompt": "a" * 500}, headers=origin)
        assert done.status_code == 200 and too_big.status_code == 413
        for response in (preflight, done, too_big):
            assert response.headers["access-control-allow-origin"] == ORIGIN
            check_common(response)


def test_html_without_a_policy_gets_one_that_allows_nothing_and_set_headers_are_kept():
    async def bare(request):
        return HTMLResponse("<p>hi</p>")

    async def own(request):
        return HTMLResponse("<p>hi</p>", headers={"X-Frame-Options": "SAMEORIGIN"})

    app = Starlette(routes=[Route("/bare", bare), Route("/own", own)])
    with TestClient(SecurityHeaders(app)) as c:
        bare_answer, own_answer = c.get("/bare"), c.get("/own")
    assert bare_answer.headers["content-security-policy"] == FALLBACK_POLICY
    check_common(bare_answer)
    assert own_answer.headers["x-frame-options"] == "SAMEORIGIN"  # not replaced, not doubled
    assert own_answer.headers.get_list("x-frame-options") == ["SAMEORIGIN"]


# ----------------------------------------------------------------------------- in a real browser

# Every violation of the policy, as the document reports it (chromium also logs it in the console, which
# the checks read too): installed before any of the page's own scripts runs.
WATCH = (
    "window.__violations = [];"
    "document.addEventListener('securitypolicyviolation', (e) => window.__violations.push("
    "`${e.violatedDirective} ${e.blockedURI} at ${e.sourceFile}:${e.lineNumber}`));"
)


def _watch(driver) -> None:
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": WATCH})
    driver.get_log("browser")  # what earlier pages logged is not this check's


def _violations(driver) -> list[str]:
    """The violations the document saw, and the console's lines about its policy (chromium logs them as
    SEVERE, which chromedriver collects by default)."""
    seen = driver.execute_script("return window.__violations ?? ['the watcher was not installed']")
    logged = [
        entry["message"]
        for entry in driver.get_log("browser")
        if entry.get("source") == "security" or "Content Security Policy" in entry["message"]
    ]
    return [*seen, *logged]


def test_the_page_works_under_its_policy_on_the_server_and_in_the_browser(browser, live_server, model):
    pytest.importorskip("selenium", reason="install nextword[serve-test] (selenium) to test the page")
    from browser import generate, load, run_in_browser, wait
    from selenium.webdriver.common.by import By

    _watch(browser)
    load(browser, live_server.url)  # the model line and the suggestions: /v1/models, /v1/suggest
    want = model.generate("the network", max_words=8, temperature=0, top_k=None, top_p=None)
    assert generate(browser, "the network", 8, 0, "") == want  # streamed from the server
    browser.find_element(By.ID, "tab-score").click()
    browser.find_element(By.ID, "score-button").click()
    wait(browser, lambda d: "perplexity" in d.find_element(By.ID, "score-summary").text, "no score shown")
    browser.find_element(By.ID, "tab-write").click()
    run_in_browser(browser)  # the worker, onnxruntime-web and its WebAssembly, model.onnx
    assert generate(browser, "the network", 8, 0, "") == want
    assert _violations(browser) == []

    # what the policy is for: a model's word put into the page as HTML (no page code does so) runs nothing
    browser.execute_script(
        "document.body.insertAdjacentHTML('beforeend', '<img src=x onerror=\"window.pwned = 1\">');"
        "const s = document.createElement('script'); s.textContent = 'window.pwned = 2';"
        "document.head.append(s);"
    )
    blocked = "return window.__violations.length"
    wait(
        browser, lambda d: d.execute_script(blocked) >= 2, "the injected script and handler were not refused"
    )
    assert browser.execute_script("return window.pwned") is None
    assert any("script-src" in line for line in browser.execute_script("return window.__violations"))


def test_the_api_reference_works_under_its_policy(browser, live_server):
    pytest.importorskip("selenium", reason="install nextword[serve-test] (selenium) to test the page")
    from browser import wait
    from selenium.webdriver.common.by import By

    _watch(browser)
    browser.get(live_server.url + "/docs")
    operation = "#operations-default-listModels .opblock-summary"  # GET /v1/models
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, operation), "no operations").pop().click()
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".try-out__btn"), "no Try it out").pop().click()
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".execute"), "no Execute").pop().click()
    status = ".live-responses-table .response-col_status"
    code = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, status), "no answer shown").pop()
    assert code.text.strip().startswith("200")  # fetched from this server (connect-src 'self')
    assert _violations(browser) == []


@pytest.mark.parametrize("content_type", [b"text/html", b"Text/HTML; charset=utf-8"])
def test_an_html_answer_of_any_spelling_gets_the_fallback_policy(content_type):
    """The media type is matched without regard to case or parameters."""
    from nextword.serve.headers import CSP, FALLBACK_POLICY, _with_headers

    assert dict(_with_headers([(b"content-type", content_type)]))[CSP] == FALLBACK_POLICY.encode()
