"""``nextword serve --ssl-certfile/--ssl-keyfile``: HTTPS served by the command itself, and certificate
files that cannot be used refused in one line before the server starts (certificates made by trustme,
a test CA)."""

from __future__ import annotations

import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
pytest.importorskip("httpx", reason="install nextword[serve-test] to test the server")
pytest.importorskip("trustme", reason="install nextword[serve-test] (trustme) to test HTTPS")

import httpx
import trustme
from browser import bound_port

from nextword.serve import ServeConfig
from nextword.serve.server import check_tls

CLI = "import sys; from nextword.cli.main import main; sys.exit(main(sys.argv[1:]))"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A test CA, a certificate for 127.0.0.1 signed by it, and the files made of them."""
    folder = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    other = ca.issue_cert("localhost")
    paths = {name: folder / f"{name}.pem" for name in ("ca", "cert", "key", "both", "other_key", "encrypted")}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    cert.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    cert.private_key_pem.write_to_path(str(paths["key"]))
    cert.private_key_and_cert_chain_pem.write_to_path(str(paths["both"]))
    other.private_key_pem.write_to_path(str(paths["other_key"]))
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(cert.private_key_pem.bytes(), password=None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    paths["encrypted"].write_bytes(encrypted)
    return paths


def _serve(model_path: Path, *flags: str) -> subprocess.Popen:
    argv = ["serve", str(model_path), "--port", "0", *flags]
    return subprocess.Popen(
        [sys.executable, "-c", CLI, *argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _wait_up(url: str, process: subprocess.Popen, verify: ssl.SSLContext) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited {process.returncode}: {process.stdout.read()}")
        try:
            if httpx.get(url + "/health", timeout=1, verify=verify).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("the server did not come up")


@pytest.mark.parametrize("files", [("cert", "key"), ("both", None)])
def test_the_server_speaks_https_with_a_certificate_and_its_key(model_path, model, pki, files):
    cert, key = files
    flags = ["--ssl-certfile", str(pki[cert])] + (["--ssl-keyfile", str(pki[key])] if key else [])
    process = _serve(model_path, *flags, "--api-key", "k-1")
    try:
        port, said = bound_port(process.stdout)
        url = f"https://127.0.0.1:{port}"
        trusted = ssl.create_default_context(cafile=str(pki["ca"]))
        _wait_up(url, process, trusted)
        answer = httpx.post(
            url + "/v1/completions",
            json={"prompt": "the system", "max_tokens": 5, "temperature": 0},
            headers={"Authorization": "Bearer k-1"},
            verify=trusted,
            timeout=30,
        )
        assert answer.status_code == 200
        assert answer.json()["choices"][0]["text"] == model.generate("the system", max_words=5, temperature=0)
        with pytest.raises(httpx.ConnectError):  # a client that does not trust the CA is refused
            httpx.get(url + "/health", timeout=5)
        with pytest.raises(httpx.RemoteProtocolError):  # plain HTTP to the HTTPS port: no answer
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
    finally:
        process.terminate()
        process.communicate(timeout=30)
    assert f"Uvicorn running on https://127.0.0.1:{port}" in said


@pytest.mark.parametrize(
    ("cert", "key", "said"),
    [
        ("missing", "key", "missing.pem cannot be read (No such file or directory)"),
        ("cert", "other_key", "the private key is not the certificate's"),
        ("cert", "encrypted", "the private key is encrypted; give an unencrypted copy"),
        ("cert", None, "not a PEM certificate and its private key"),
        ("key", "cert", "not a PEM certificate and its private key"),
    ],
)
def test_certificate_files_that_cannot_serve_are_refused_before_the_server_starts(
    model_path, pki, tmp_path, cert, key, said
):
    cert_path = pki[cert] if cert in pki else tmp_path / f"{cert}.pem"
    flags = ["--ssl-certfile", str(cert_path)] + (["--ssl-keyfile", str(pki[key])] if key else [])
    process = _serve(model_path, *flags)
    output = process.communicate(timeout=60)[0]  # no prompt for a password, no server started
    assert process.returncode == 2, output
    line = output.strip().splitlines()[-1]
    assert line.startswith("nextword serve: error: --ssl-certfile ") and said in line, output
    assert "ssl_" not in line, line  # the flags, not the API's field names
    assert "Traceback" not in output and "Uvicorn running" not in output
    with pytest.raises(ValueError, match="ssl_certfile"):  # the same check, from Python
        check_tls(ServeConfig(ssl_certfile=str(cert_path), ssl_keyfile=str(pki[key]) if key else None))


def test_a_key_without_its_certificate_is_refused():
    from nextword.cli.args import flag_names

    with pytest.raises(ValueError, match=r"ssl_keyfile key\.pem is given without `ssl_certfile`") as refused:
        ServeConfig(ssl_keyfile="key.pem")
    # on the command line every option is named as its flag (the second was left as the field's name)
    assert flag_names(str(refused.value), ServeConfig) == (
        "--ssl-keyfile key.pem is given without --ssl-certfile: give the certificate too"
    )
    with pytest.raises(ValueError, match="ssl_certfile must be the path of a PEM file"):
        ServeConfig(ssl_certfile="")
