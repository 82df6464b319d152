"""The page served over HTTPS (uvicorn's TLS, a certificate of a test CA made by trustme) in a real
headless chromium: a secure context where every request stays on https (a mixed-content request would
be blocked), with an API key, from the server and in "run in this browser" mode."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
pytest.importorskip("selenium", reason="install nextword[serve-test] (selenium) to test the page")
pytest.importorskip("trustme", reason="install nextword[serve-test] (trustme) to test HTTPS")

import trustme
from browser import IN_BROWSER_TIMEOUT, generate, new_browser, requests_to, run_in_browser, start_server, wait
from selenium.webdriver.common.by import By

KEY = "sk-page-over-https"


@pytest.fixture(scope="module")
def https_server(model, tmp_path_factory):
    from nextword.serve import ServeConfig, create_app

    folder = tmp_path_factory.mktemp("https-page")
    cert = trustme.CA().issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(folder / "cert.pem"))
    cert.private_key_pem.write_to_path(str(folder / "key.pem"))
    server = start_server(
        create_app(ServeConfig(api_keys=(KEY,)), model),
        ssl_certfile=str(folder / "cert.pem"),
        ssl_keyfile=str(folder / "key.pem"),
    )
    server.url = server.url.replace("http://", "https://")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def https_browser():
    driver = new_browser(test_ca=True)
    yield driver
    driver.quit()


def test_the_page_over_https_with_a_key_from_the_server_and_in_the_browser(
    https_browser, https_server, model
):
    browser, url = https_browser, https_server.url
    browser.get(url + "/")
    assert browser.execute_script("return window.isSecureContext && location.protocol") == "https:"
    form = browser.find_element(By.ID, "key-form")
    wait(browser, lambda d: form.is_displayed(), "the page never asked for the key", IN_BROWSER_TIMEOUT)
    browser.find_element(By.ID, "api-key").send_keys(KEY)
    browser.find_element(By.CSS_SELECTOR, "#key-form button").click()
    loaded = "the model line never loaded"
    wait(browser, lambda d: "tiny" in d.find_element(By.ID, "model-line").text, loaded, IN_BROWSER_TIMEOUT)
    browser.get_log("browser")  # the requests refused before the key (401) were the point
    want = model.generate("a neural network", max_words=12, temperature=0.9, seed=3)
    assert generate(browser, "a neural network", 12, 0.9, "3") == want  # the server's, over TLS

    run_in_browser(browser)  # the model file fetched with the key, over TLS
    before = requests_to(browser, "/v1/completions")
    assert generate(browser, "a neural network", 12, 0.9, "3") == want  # nextword-web's, in a worker
    assert requests_to(browser, "/v1/completions") == before
    page = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    worker = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "window.nextwordInBrowser.model.resources().then((r) => done(r.map((e) => e.name)));"
    )
    assert url + "/model.onnx" in page  # with a key, the page fetches the file and hands the worker its bytes
    assert all(name.startswith(url + "/") for name in page + worker), page + worker
    assert not [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
