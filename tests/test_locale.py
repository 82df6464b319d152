"""Under a locale that is not UTF-8, and with names that are not UTF-8: arguments are read as the text
typed, file names print as their bytes, and the server answers for a model file whose name it cannot
decode. ``PYTHONUTF8=0`` in the C locale makes Python read every non-ASCII byte of an argument or a file
name as a lone surrogate (PEP 383), as on a system whose locale is not set up."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nextword.export.provenance import escape_undecodable
from nextword.runtime.default import BUNDLED_MODEL
from nextword.runtime.terminal import escape_surrogates, utf8_text

NEXTWORD = [sys.executable, "-c", "import sys; from nextword.cli.entry import main; sys.exit(main())"]
OPTIONS = ["--seed", "3", "--max-words", "6", "--json", "--stop", "é"]


def _nextword(
    *argv: str, utf8: bool, cwd: Path | None = None, encoding: str | None = None
) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "LC_ALL": "C.UTF-8" if utf8 else "C", "PYTHONUTF8": "1" if utf8 else "0"}
    env.pop("PYTHONIOENCODING", None)
    if encoding is not None:
        env["PYTHONIOENCODING"] = encoding
    return subprocess.run([*NEXTWORD, *argv], capture_output=True, env=env, cwd=cwd, timeout=120)


def test_utf8_held_as_surrogates_is_read_back():
    typed = os.fsencode("the café network, 中文").decode("ascii", "surrogateescape")
    assert typed != "the café network, 中文"  # what PYTHONUTF8=0 in the C locale makes of the argument
    assert utf8_text(typed) == "the café network, 中文"
    latin1 = b"caf\xe9".decode("ascii", "surrogateescape")  # not UTF-8: kept
    assert utf8_text(latin1) == latin1 and escape_surrogates(latin1) == "caf\\xe9"
    assert escape_surrogates(b"r\x80n\xff".decode("ascii", "surrogateescape")) == "r\\x80n\\xff"
    assert escape_surrogates("a\ud800b") == "a\\ud800b"  # a lone surrogate that stands for no byte
    assert escape_surrogates(typed) == "the café network, 中文"
    # a model file's record of a corpus named under such a locale keeps its name readable
    assert escape_undecodable({"paths": [typed]}) == {"paths": ["the café network, 中文"]}


def test_a_prompt_typed_under_a_non_utf8_locale_is_the_text_typed():
    """`LC_ALL=C PYTHONUTF8=0 nextword generate "the café network"` continued "the caf\\udcc3\\udca9
    network", two unknown symbols; a --stop string was read so too."""
    prompt = "the café network"
    utf8 = _nextword("generate", str(BUNDLED_MODEL), prompt, *OPTIONS, utf8=True)
    plain = _nextword("generate", str(BUNDLED_MODEL), prompt, *OPTIONS, utf8=False)
    assert utf8.returncode == plain.returncode == 0, plain.stderr
    said, said_plain = json.loads(utf8.stdout), json.loads(plain.stdout)
    assert said_plain == said and said[0]["prompt"] == prompt


def test_a_file_name_in_a_message_prints_as_its_bytes(tmp_path):
    """Messages wrote each byte of such a name as "?" (`nextword export 'runs/r??n-???'`), so a command
    they suggest could not be copied and run."""
    folder = tmp_path / "rün-中"
    folder.mkdir()
    result = _nextword("info", "rün-中", utf8=False, cwd=tmp_path)
    assert result.returncode == 2
    assert "rün-中".encode() in result.stderr and b"?" not in result.stderr, result.stderr
    # the same on a UTF-8 stream (PYTHONIOENCODING=utf-8): the bytes are UTF-8, written as they are (a
    # handler's text there must be ASCII: this failed with "lost sys.stderr", status 1)
    result = _nextword("info", "rün-中", utf8=False, cwd=tmp_path, encoding="utf-8")
    assert result.returncode == 2 and "rün-中".encode() in result.stderr, result.stderr
    # a byte that is not UTF-8, on a UTF-8 terminal: escaped as the model file records it, the output
    # still UTF-8 (a raw byte would break whatever reads it as such)
    try:
        (tmp_path / os.fsdecode(b"r\xfen")).mkdir()
    except (OSError, UnicodeEncodeError) as exc:  # APFS (EILSEQ), Windows
        pytest.skip(f"this file system refuses file names that are not UTF-8 ({exc})")
    result = _nextword("info", os.fsdecode(b"r\xfen"), utf8=True, cwd=tmp_path)
    assert result.returncode == 2 and b"r\\xfen" in result.stderr, result.stderr
    result.stderr.decode("utf-8")


def test_a_prompt_that_ends_a_crlf_line_is_continued_as_one_without_it(capsys):
    """`nextword generate "$(cat prompt.txt)"` of a Windows file kept its last \\r: the text printed
    with a "\\x0d" glued to the first new word, as --file of the same file did not."""
    from nextword.cli.main import main

    texts = []
    for prompt in ("a neural network", "a neural network\r", "a neural\r\nnetwork\r"):
        assert main(["generate", str(BUNDLED_MODEL), prompt, "--seed", "1", "--max-words", "6"]) == 0
        texts.append(capsys.readouterr().out)
    assert texts[0] == texts[1] and "\\x0d" not in texts[1], texts
    assert texts[2] == texts[0].replace("neural network", "neural\nnetwork", 1), texts


def test_the_server_answers_for_a_model_whose_file_name_is_not_utf8(tmp_path):
    """Every request, /health included, was a 500: the model's id, made of its file name, held a
    surrogate that JSON answers could not encode."""
    pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
    from fastapi.testclient import TestClient

    from nextword.runtime import load
    from nextword.serve import ServeConfig, create_app

    path = tmp_path / os.fsdecode(b"mod\xe9le.onnx")
    try:
        shutil.copyfile(BUNDLED_MODEL, path)
    except (OSError, UnicodeEncodeError) as exc:  # APFS (EILSEQ), Windows
        pytest.skip(f"this file system refuses file names that are not UTF-8 ({exc})")
    with TestClient(create_app(ServeConfig(), load(path))) as client:
        assert client.get("/health").json()["model"] == "mod\\xe9le"
        listed = client.get("/v1/models").json()["data"][0]
        assert listed["id"] == "mod\\xe9le" and listed["nextword"]["file"] == "mod\\xe9le.onnx"
        answer = client.post("/v1/completions", json={"model": "mod\\xe9le", "prompt": "a", "max_tokens": 2})
        assert answer.status_code == 200 and answer.json()["model"] == "mod\\xe9le"
        download = client.get("/model.onnx")
        assert download.status_code == 200 and download.content == BUNDLED_MODEL.read_bytes()
        assert "mod%5Cxe9le.onnx" in download.headers["content-disposition"]
        assert client.get("/metrics").status_code == 200


def test_characters_the_terminal_cannot_show_are_said_once():
    """Written as "?" with exit status 0 and no word: a user took "caf?" for the model's text."""
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    for prompt, noted in (("the café network", True), ("the network", False)):
        result = subprocess.run(
            [*NEXTWORD, "generate", str(BUNDLED_MODEL), prompt, "--seed", "3", "--max-words", "4"],
            capture_output=True,
            env=env,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert (b"caf?" in result.stdout) == noted
        said = result.stderr.count(b"note: some characters could not be written in this terminal's encoding")
        assert said == int(noted), result.stderr
        assert not noted or b"PYTHONIOENCODING=utf-8" in result.stderr


@pytest.mark.parametrize(
    ("encoding", "written"),
    [
        # a byte of a name read under a locale that is not UTF-8 as itself; another character as "?"
        # (0x80 to 0x9f, C1 controls in an 8-bit terminal's encoding, escaped)
        ("ascii", b"r\xc3\xbcn r\xfen r\\x80n a ?? b"),
        ("latin-1", b"r\xc3\xbcn r\xfen r\\x80n a ?? b"),
        # UTF-8 bytes as themselves, other bytes escaped: the output stays UTF-8
        ("utf-8", "rün r\\xfen r\\x80n a 中文 b".encode()),
        ("utf-16-le", "r\\xc3\\xbcn r\\xfen r\\x80n a 中文 b".encode("utf-16-le")),
    ],
)
def test_a_stream_writes_what_it_can(encoding, written):
    from nextword.cli.display import REPLACED, writes_what_it_can

    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding=encoding)
    writes_what_it_can(stream)
    stream.write(b"r\xc3\xbcn r\xfen r\x80n".decode("ascii", "surrogateescape") + " a 中文 b")
    stream.flush()
    assert raw.getvalue() == written
    assert (encoding in REPLACED) == (b"?" in written)
    REPLACED.clear()


def test_the_note_on_replaced_characters_is_said_once_per_command(capsys):
    from nextword.cli.display import REPLACED
    from nextword.cli.main import main

    REPLACED.add("ascii")  # as if the command's output had met a character ascii lacks
    assert main(["info", str(BUNDLED_MODEL)]) == 0
    assert "note: some characters could not be written in this terminal's encoding (ascii)" in (
        capsys.readouterr().err
    )
    assert main(["info", str(BUNDLED_MODEL)]) == 0
    assert "note:" not in capsys.readouterr().err


def test_an_argument_is_read_as_typed():
    from nextword.cli.positionals import typed_text

    assert typed_text("a b\r\n") == "a b\n" and typed_text("a b\r") == "a b"
    assert typed_text("a b\n") == "a b\n"  # a line break typed at the end is the user's
    assert typed_text("a\r\nb\rc") == "a\nb\rc"


@pytest.mark.parametrize("encoding", ["utf-8", "ascii", "latin-1"])
def test_a_name_cannot_steer_the_terminal_through_its_bytes(encoding):
    """A file name's bytes go out as they are where they are plain text; one that holds a bidirectional
    override (UTF-8 e2 80 ae) or a C1 CSI (0x9b; c2 9b) would reorder or colour what follows: escaped."""
    from nextword.cli.display import writes_what_it_can

    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding=encoding)
    writes_what_it_can(stream)
    stream.write(b"\xe2\x80\xaeevil \xc2\x9b[31m x\x9by".decode("ascii", "surrogateescape"))
    stream.flush()
    written = raw.getvalue()
    assert b"\xe2\x80\xae" not in written and b"\xc2\x9b" not in written
    assert not any(0x80 <= byte < 0xA0 for byte in written), written
    assert b"\\x9b" in written
