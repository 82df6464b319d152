"""API keys (``nextword serve --api-key``): what they guard, what they leave open, how a refusal reads in
OpenAI's client, and the page that asks for the key (in a real headless chromium)."""

from __future__ import annotations

import logging

import pytest

pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
pytest.importorskip("httpx", reason="install nextword[serve-test] to test the server")

from fastapi.testclient import TestClient

from nextword.serve import ServeConfig, create_app
from nextword.serve.errors import CODES

KEY, OTHER = "test-key-123", "second.key_456"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def client(model):
    with TestClient(create_app(ServeConfig(api_keys=(KEY, OTHER)), model)) as client:
        yield client


def refusal(response) -> str:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    error = response.json()["error"]
    assert error["code"] == "invalid_api_key" and error["code"] in CODES
    assert KEY not in error["message"] and OTHER not in error["message"]  # a key is never echoed
    return error["message"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/models"),
        ("GET", "/v1/models/tiny"),
        ("HEAD", "/v1/models"),
        ("POST", "/v1/completions"),
        ("POST", "/v1/suggest"),
        ("POST", "/v1/score"),
        ("POST", "/v1/chat/completions"),
        ("GET", "/v1/nothing-here"),
        ("GET", "/model.onnx"),
        ("HEAD", "/model.onnx"),
    ],
)
def test_every_route_that_runs_or_hands_out_the_model_needs_a_key(client, method, path):
    body = {"json": {"prompt": "the"}} if method == "POST" else {}
    if method == "HEAD":  # no body to read the message from: the status and the header say it
        response = client.request(method, path)
        assert response.status_code == 401 and "www-authenticate" in response.headers
        return
    assert "Authorization: Bearer KEY" in refusal(client.request(method, path, **body))
    wrong = refusal(client.request(method, path, headers={"Authorization": "Bearer nope"}, **body))
    assert "not one this server takes" in wrong
    basic = refusal(client.request(method, path, headers={"Authorization": "Basic dXNlcjpwYXNz"}, **body))
    assert "not of the form Bearer KEY" in basic
    assert client.request(method, path, headers=AUTH, **body).status_code != 401


def test_each_key_given_is_accepted_the_scheme_in_any_case(client):
    for header in (f"Bearer {KEY}", f"bearer {OTHER}", f"BEARER  {KEY} "):
        assert client.get("/v1/models", headers={"Authorization": header}).status_code == 200
    for header in (f"Bearer {KEY}x", f"Bearer {KEY[:-1]}", "Bearer", f"{KEY}", f"Bearer {KEY} {OTHER}"):
        assert client.get("/v1/models", headers={"Authorization": header}).status_code == 401


def test_health_the_page_its_files_and_the_api_reference_stay_open(client):
    for path in ("/health", "/", "/static/app.js", "/static/key.js", "/docs", "/openapi.json"):
        assert client.get(path).status_code == 200, path


def test_a_request_without_a_key_is_refused_before_its_body_is_read(model):
    with TestClient(create_app(ServeConfig(api_keys=(KEY,), max_body_bytes=100), model)) as client:
        big = {"prompt": "x" * 1000}
        refusal(client.post("/v1/completions", json=big))  # 401, not the body cap's 413
        assert client.post("/v1/completions", json=big, headers=AUTH).status_code == 413


def test_the_api_reference_says_which_routes_need_the_key(client):
    schema = client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["apiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schema["components"]["securitySchemes"]["apiKey"]["description"],
    }
    paths = schema["paths"]
    assert paths["/v1/completions"]["post"]["security"] == [{"apiKey": []}]
    refused = paths["/v1/score"]["post"]["responses"]["401"]  # with the body it carries
    assert refused["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
    assert "security" not in paths["/health"]["get"]
    assert "invalid_api_key" not in paths["/v1/completions"]["post"]["responses"]["400"]["description"]


def test_without_keys_none_is_asked_for_and_the_reference_makes_it_optional(model, monkeypatch):
    """A client generated from a keyless server's schema knew nothing of keys: pointed at a keyed one,
    its calls could not send one, and the 401 was an undeclared answer."""
    monkeypatch.delenv("NEXTWORD_API_KEY", raising=False)
    with TestClient(create_app(ServeConfig(), model)) as client:
        assert client.get("/v1/models").status_code == 200
        schema = client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    for path, method in (("/v1/completions", "post"), ("/v1/models", "get"), ("/v1/score", "post")):
        operation = schema["paths"][path][method]
        assert operation["security"] == [{}, {"apiKey": []}], path  # none, or the key
        assert "only from a server started with a key" in operation["responses"]["401"]["description"]
    assert "security" not in schema["paths"]["/health"]["get"]


def test_the_key_may_come_from_the_environment_and_a_bad_one_is_named(model, monkeypatch):
    monkeypatch.setenv("NEXTWORD_API_KEY", KEY)
    with TestClient(create_app(ServeConfig(), model)) as client:
        refusal(client.get("/v1/models"))
        assert client.get("/v1/models", headers=AUTH).status_code == 200
    monkeypatch.setenv("NEXTWORD_API_KEY", "two words")
    with pytest.raises(ValueError, match=r"\$NEXTWORD_API_KEY has a key that is not 1 to 1024 visible"):
        create_app(ServeConfig(), model)
    # set but empty (a secret that did not arrive): refused, not a server open to everyone
    for empty in ("", "  "):
        monkeypatch.setenv("NEXTWORD_API_KEY", empty)
        with pytest.raises(ValueError, match=r"^\$NEXTWORD_API_KEY is set but empty: set it to the key"):
            create_app(ServeConfig(), model)
    # keys given in the config win over the environment's
    with TestClient(create_app(ServeConfig(api_keys=OTHER), model)) as client:
        assert client.get("/v1/models", headers={"Authorization": f"Bearer {OTHER}"}).status_code == 200


@pytest.mark.parametrize("bad", ["", "has space", "line\nbreak", "é", "x" * 1025, 5, [None]])
def test_a_key_a_header_cannot_carry_is_refused_without_being_shown(bad):
    with pytest.raises(ValueError) as caught:
        ServeConfig(api_keys=bad if isinstance(bad, list) else (bad,))
    message = str(caught.value)
    assert "api_keys" in message and "secrets.token_urlsafe" in message
    if isinstance(bad, str) and bad:
        assert bad not in message


def test_keys_stay_out_of_the_configs_repr_and_the_command_takes_them_as_flags():
    from nextword.cli.args import config_from_args
    from nextword.cli.main import build_parser

    config = ServeConfig(api_keys=(KEY,))
    assert KEY not in repr(config) and KEY not in str(config)
    args = build_parser().parse_args(["serve", "--api-key", KEY, "--api-key", OTHER])
    assert config_from_args(ServeConfig(), vars(args)).api_keys == (KEY, OTHER)


def test_a_public_address_without_a_key_is_warned_about(caplog, monkeypatch):
    from nextword.serve import server

    monkeypatch.delenv("NEXTWORD_API_KEY", raising=False)
    with caplog.at_level(logging.WARNING, logger="nextword"):
        server._warn_if_public(ServeConfig(host="0.0.0.0"))
        server._warn_if_public(ServeConfig(host="0.0.0.0", api_keys=(KEY,)))
        server._warn_if_public(ServeConfig(host="0.0.0.0", api_keys=(KEY,), ssl_certfile="cert.pem"))
        server._warn_if_public(ServeConfig(host="127.0.0.1"))
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 3 and "--api-key" in lines[0] and "anyone" in lines[0]
    assert "clear text" in lines[1] and "--ssl-certfile" in lines[1] and "--api-key" not in lines[1]
    assert "reachable from the network" in lines[2] and "clear text" not in lines[2]


def test_the_prefix_a_proxy_strips_does_not_open_a_way_around_the_key(model):
    """Behind ``--root-path /nextword``, uvicorn hands the app /nextword/v1/...: still guarded."""
    app = create_app(ServeConfig(api_keys=(KEY,), root_path="/nextword"), model)
    with TestClient(app, root_path="/nextword") as client:
        refusal(client.get("/nextword/v1/models"))
        assert client.get("/nextword/v1/models", headers=AUTH).status_code == 200
        assert client.get("/nextword/health").status_code == 200


def test_openai_clients_raise_authentication_error_and_work_with_the_key(model):
    openai = pytest.importorskip("openai", reason="install nextword[serve-test] (openai)")
    from browser import start_server

    server = start_server(create_app(ServeConfig(api_keys=(KEY,)), model))
    try:
        stranger = openai.OpenAI(base_url=server.url + "/v1", api_key="sk-wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as caught:
            stranger.completions.create(model="tiny", prompt="the", max_tokens=3)
        assert caught.value.code == "invalid_api_key"
        client = openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0)
        streamed = client.completions.create(model="tiny", prompt="the", max_tokens=4, seed=1, stream=True)
        text = "".join(chunk.choices[0].text for chunk in streamed)
        whole = client.completions.create(model="tiny", prompt="the", max_tokens=4, seed=1)
        assert text == whole.choices[0].text and text
    finally:
        server.stop()


# ---------------------------------------------------------------- the page, in chromium


def test_the_page_asks_for_the_key_keeps_it_for_the_tab_and_runs_in_the_browser_with_it(browser, model):
    pytest.importorskip("selenium", reason="install nextword[serve-test] (selenium) to test the page")
    from browser import start_server
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def wait(condition, message: str, timeout: float = 30):
        return WebDriverWait(browser, timeout).until(lambda d: condition(d), message)

    def model_line() -> str:
        return browser.find_element(By.ID, "model-line").text

    server = start_server(create_app(ServeConfig(api_keys=(KEY,)), model))
    try:
        browser.get(server.url + "/")
        browser.execute_script("sessionStorage.clear()")
        browser.refresh()
        form = browser.find_element(By.ID, "key-form")
        wait(lambda d: form.is_displayed(), "the page never asked for the key")
        assert "asks for an API key" in model_line()
        assert not browser.find_element(By.ID, "model-card").is_displayed()
        assert browser.switch_to.active_element == browser.find_element(By.ID, "api-key")
        # what needs the key is out of reach meanwhile: clicks, Tab and a screen reader pass it by
        inert = "return ['main', 'nav.tabs'].map((s) => document.querySelector(s).inert)"
        assert browser.execute_script(inert) == [True, True]
        field = browser.find_element(By.ID, "api-key")
        field.send_keys("wrong-key")
        browser.find_element(By.CSS_SELECTOR, "#key-form button").click()
        status = browser.find_element(By.ID, "key-status")
        wait(lambda d: "did not accept" in status.text, "a refused key was not said so")
        assert "error" in status.get_attribute("class").split()
        assert field.get_attribute("aria-invalid") == "true"
        field.clear()
        field.send_keys(KEY)
        field.submit()  # Enter in the field
        wait(lambda d: "tiny" in model_line(), "the model line never loaded with the key")
        assert not form.is_displayed()
        assert browser.execute_script(inert) == [False, False]
        # the keyboard goes on to the prompt, not back to the page's start with the form that held it
        assert browser.execute_script("return document.activeElement.id") == "prompt"
        prompt = browser.find_element(By.ID, "prompt")
        prompt.clear()
        prompt.send_keys("the system")
        expected = [word for word, _ in model.next_words("the system", k=8)]
        chips = "return [...document.querySelectorAll('#suggestions .chip-word')].map(e => e.textContent)"
        wait(lambda d: d.execute_script(chips) == expected, "no suggestions with the key")

        browser.refresh()  # the tab keeps the key: no second question
        wait(lambda d: "tiny" in model_line(), "the kept key was not used")
        assert not browser.find_element(By.ID, "key-form").is_displayed()

        # "Run in this browser": the model file, guarded too, is fetched with the key
        browser.find_element(By.ID, "in-browser").click()
        backend = "return document.body.dataset.backend"
        where = "return document.getElementById('where-status').textContent"
        wait(
            lambda d: d.execute_script(backend) == "browser",
            "not loaded: " + browser.execute_script(where),
            120,
        )
        run = (
            "const [prompt, done] = [arguments[0], arguments[arguments.length - 1]];"
            "const m = window.nextwordInBrowser.model;"
            "m.generate(prompt, {maxWords: 8, temperature: 0})"
            ".then(done, (e) => done('error: ' + e.message));"
        )
        browser.set_script_timeout(60)
        shown = browser.execute_async_script(run, "the network")
        assert shown == model.generate("the network", max_words=8, temperature=0)

        browser.execute_script("sessionStorage.setItem('nextword-api-key', 'stale-key')")
        browser.refresh()  # a kept key the server no longer takes: asked again, and said why
        wait(lambda d: d.find_element(By.ID, "key-form").is_displayed(), "a stale key was not asked again")
        assert "no longer accepted" in browser.find_element(By.ID, "key-status").text
    finally:
        browser.execute_script("sessionStorage.clear()")
        server.stop()
