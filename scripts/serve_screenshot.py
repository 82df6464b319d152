"""Screenshots of the page `nextword serve` shows, for the README and docs/serving.md.

Starts ``nextword serve`` with the bundled model on a free loopback port, drives Debian's headless
chromium through selenium (pick a suggestion, generate with a fixed seed, score a text) and writes
``docs/img/serve-write.png`` and ``docs/img/serve-score.png``.

    python scripts/serve_screenshot.py          # needs nextword[serve,serve-test] and chromium
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

IMG = Path(__file__).resolve().parent.parent / "docs" / "img"
SERVE = "import sys; from nextword.cli.entry import main; sys.argv[0] = 'nextword'; sys.exit(main())"
SCORED = (
    "A neural network includes an input layer, a hidden layer and an output layer. The weights are "
    "updated by backpropagation of an error value. Bananas sing the network on Tuesdays."
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(IMG), help="folder for the PNG files")
    parser.add_argument("--dark", action="store_true", help="the dark colour scheme")
    args = parser.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-c", SERVE, "-q", "serve", "--port", str(port)])
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--hide-scrollbars"):
        options.add_argument(argument)
    options.add_argument("--window-size=1200,760")
    if args.dark:
        options.add_argument("--blink-settings=preferredColorScheme=0")
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver"))
    browser = webdriver.Chrome(options=options, service=service)
    wait = WebDriverWait(browser, 30)
    suffix = "-dark" if args.dark else ""
    try:
        _wait_for(url + "/health")
        browser.get(url + "/")
        wait.until(lambda d: "·" in d.find_element(By.ID, "model-line").text)
        prompt = browser.find_element(By.ID, "prompt")
        prompt.clear()
        prompt.send_keys("the present invention relates to a neural")
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#suggestions .chip"))
        time.sleep(0.5)
        browser.find_elements(By.CSS_SELECTOR, "#suggestions .chip")[0].click()
        browser.find_element(By.ID, "seed").send_keys("4")
        browser.find_element(By.ID, "generate").click()
        wait.until(lambda d: "words in" in d.find_element(By.ID, "status").text)
        time.sleep(0.8)  # the suggestions for the picked word, and the fade-in of the last words
        browser.save_screenshot(str(Path(args.out) / f"serve-write{suffix}.png"))
        browser.find_element(By.ID, "tab-score").click()
        box = browser.find_element(By.ID, "score-text")
        box.clear()
        box.send_keys(SCORED)
        browser.find_element(By.ID, "score-button").click()
        wait.until(lambda d: "perplexity" in d.find_element(By.ID, "score-summary").text)
        browser.save_screenshot(str(Path(args.out) / f"serve-score{suffix}.png"))
    finally:
        browser.quit()
        server.terminate()
        server.wait(timeout=30)


def _wait_for(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


if __name__ == "__main__":
    main()
