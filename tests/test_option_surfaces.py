"""Every surface that takes decoding options offers every field of GenerationConfig.

A decoding option is added in runtime/generation.py (GenerationConfig); `nextword generate` and
`nextword export` derive their flags from it, but the HTTP API (serve/schemas.py, serve/options.py) and
nextword-web (web/src/generation.js, web/types/index.d.ts) list the options by hand, and nothing else
fails when one of them is missed: a model file can then store a default that the server refuses to
override and that nextword-web ignores or refuses. These tests fail on such a drift.
docs/architecture.md ("Adding a decoding option") lists every place to update.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from nextword.runtime import GenerationConfig

ROOT = Path(__file__).resolve().parents[1]
WEB = ROOT / "web"
FIELDS = dataclasses.fields(GenerationConfig)
NAMES = [f.name for f in FIELDS]

# GenerationConfig fields that POST /v1/completions leaves out on purpose, each with the reason. A
# field left out here takes the model file's decoding default in every request, and no client can
# change it: say why that is right. (None at present: every option is offered.)
NOT_IN_THE_API: dict[str, str] = {}

# A value other than the default for every field, valid together except num_beams (beam search refuses
# the sampling options), which is tried on its own. A new field needs one here.
EXAMPLES: dict[str, Any] = {
    "max_words": 7,
    "min_words": 2,
    "temperature": 0.5,
    "top_k": 5,
    "top_p": 0.9,
    "repetition_penalty": 1.3,
    "no_repeat_ngram_size": 3,
    "stop": ("END",),
    "stop_at_end": False,
    "allow_unknown": True,
    "num_return_sequences": 2,
    "num_beams": 3,
    "length_penalty": 0.5,
    "seed": 11,
    "cache": True,
}
BEAMS_ALONE = ("num_beams",)


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def default(f: dataclasses.Field) -> Any:
    assert f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING, f.name
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]


def test_every_field_has_an_example_value():
    missing = [name for name in NAMES if name not in EXAMPLES]
    assert not missing, f"add a non-default value for {missing} to EXAMPLES in {Path(__file__).name}"
    assert sorted(EXAMPLES) == sorted(NAMES), (
        f"EXAMPLES names no GenerationConfig field: {set(EXAMPLES) - set(NAMES)}"
    )
    for name, value in EXAMPLES.items():
        assert value != default(next(f for f in FIELDS if f.name == name)), (
            f"EXAMPLES[{name!r}] is the default"
        )


# --------------------------------------------------------------------------- the HTTP API


def test_every_field_is_a_completion_request_field_or_left_out_on_purpose():
    pytest.importorskip("pydantic", reason="install nextword[serve] to test the server")
    from nextword.serve.schemas import API_TO_RUNTIME, CompletionRequest

    to_api = {runtime: api for api, runtime in API_TO_RUNTIME.items()}
    stale = sorted(set(API_TO_RUNTIME.values()) - set(NAMES))
    assert not stale, f"serve/schemas.py's API_TO_RUNTIME maps to no GenerationConfig field: {stale}"
    unknown = sorted(set(NOT_IN_THE_API) - set(NAMES))
    assert not unknown, f"NOT_IN_THE_API names no GenerationConfig field: {unknown}"
    request = CompletionRequest.model_fields
    missing = [
        f"{name} (as {to_api.get(name, name)!r})"
        for name in NAMES
        if to_api.get(name, name) not in request and name not in NOT_IN_THE_API
    ]
    assert not missing, (
        f"GenerationConfig fields the HTTP API does not take: {missing}. Add each to serve/schemas.py's "
        "CompletionRequest (an API name of its own goes into API_TO_RUNTIME), or, if it must stay out of "
        f"the API, to NOT_IN_THE_API in {Path(__file__).name} with the reason"
    )
    both = sorted(name for name in NOT_IN_THE_API if to_api.get(name, name) in request)
    assert not both, f"{both} are CompletionRequest fields: take them off NOT_IN_THE_API"
    # left out, an option takes the model file's default: a request field's own default would override it
    overriding = {
        to_api.get(name, name): request[to_api.get(name, name)].default
        for name in NAMES
        if to_api.get(name, name) in request and request[to_api.get(name, name)].default is not None
    }
    assert not overriding, (
        f"CompletionRequest fields whose default is not None (left out: the file's): {overriding}"
    )


def test_the_servers_option_list_is_every_request_field_of_the_config():
    """serve/options.py derives the names it copies from a request into GenerationConfig.from_options;
    `stop` is read apart (a string or a list)."""
    pytest.importorskip("pydantic", reason="install nextword[serve] to test the server")
    from nextword.serve.options import REQUEST_OPTIONS
    from nextword.serve.schemas import API_TO_RUNTIME

    to_api = {runtime: api for api, runtime in API_TO_RUNTIME.items()}
    expected = [to_api.get(name, name) for name in NAMES if name != "stop" and name not in NOT_IN_THE_API]
    assert list(REQUEST_OPTIONS) == expected, (
        f"serve/options.py's REQUEST_OPTIONS lacks {sorted(set(expected) - set(REQUEST_OPTIONS))} and has "
        f"{sorted(set(REQUEST_OPTIONS) - set(expected))} beyond GenerationConfig's fields (by API_TO_RUNTIME)"
    )


def _fake_model(generation: GenerationConfig) -> Any:
    """What completion_from_request reads of a model: its decoding defaults and cache settings."""
    return SimpleNamespace(info=SimpleNamespace(generation=generation), cache_settings=object())


@pytest.mark.parametrize("beams", [False, True], ids=["sampling", "beam search"])
def test_every_option_sent_reaches_the_generation_config(beams):
    """A request that sets each option (by its API name) gets a config with that value, over a model
    file's defaults that differ from it."""
    pytest.importorskip("pydantic", reason="install nextword[serve] to test the server")
    from nextword.serve import ServeConfig
    from nextword.serve.options import completion_from_request
    from nextword.serve.schemas import API_TO_RUNTIME, CompletionRequest

    to_api = {runtime: api for api, runtime in API_TO_RUNTIME.items()}
    names = [n for n in NAMES if n not in NOT_IN_THE_API and (n in BEAMS_ALONE) == beams]
    missing = [n for n in names if n not in EXAMPLES]
    assert not missing, f"add a non-default value for {missing} to EXAMPLES"
    body: dict[str, Any] = {"prompt": "the network"}
    for name in names:
        value = EXAMPLES[name]
        body[to_api.get(name, name)] = list(value) if isinstance(value, tuple) else value
    request = CompletionRequest.model_validate(body)
    completion = completion_from_request(request, _fake_model(GenerationConfig(max_words=9)), ServeConfig())
    got = {name: getattr(completion.config, name) for name in names}
    assert got == {name: EXAMPLES[name] for name in names}


# --------------------------------------------------------------------------- nextword-web

SCRIPT = """
import * as generation from %s;
import { parsePyJson } from %s;
const plain = (value) =>
  JSON.parse(JSON.stringify(value, (_, x) => (typeof x === 'bigint' ? { bigint: x.toString() } : x)));
const fromFile = (text) => {
  try {
    return plain(generation.optionsFromMetadata(parsePyJson(text)));
  } catch (error) {
    return { error: String(error.message) };
  }
};
const input = JSON.parse(process.argv[1]);
console.log(JSON.stringify({
  fields: plain(generation.FIELDS),
  defaults: plain(generation.DEFAULTS),
  resolved: plain(generation.resolveOptions(generation.DEFAULTS, {})),
  files: input.files.map(fromFile),
}));
"""


def _node(files: list[str]) -> dict[str, Any]:
    """web/src/generation.js's FIELDS and DEFAULTS, what resolveOptions returns with no options, and
    what optionsFromMetadata makes of each of ``files`` (a model file's nextword.generation JSON)."""
    if shutil.which("node") is None:
        if os.environ.get("NEXTWORD_REQUIRE_WEB") == "1":
            pytest.fail("node is missing; NEXTWORD_REQUIRE_WEB=1 asks for the JavaScript tests")
        pytest.skip("node is missing: nextword-web's options are read under Node")
    src = WEB / "src"
    script = SCRIPT % (json.dumps((src / "generation.js").as_uri()), json.dumps((src / "pyjson.js").as_uri()))
    env = {k: v for k, v in os.environ.items() if not k.startswith("NODE_OPTIONS")}
    done = subprocess.run(
        ["node", "--input-type=module", "-e", script, json.dumps({"files": files})],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout)


def _same(python: Any, js: Any) -> bool:
    """A Python value and its JSON round trip through JavaScript: the same, a bool only as a bool."""
    if isinstance(python, tuple):
        python = list(python)
    if isinstance(python, bool) or isinstance(js, bool):
        return type(python) is type(js) and python == js
    if isinstance(python, list) and isinstance(js, list):
        return len(python) == len(js) and all(map(_same, python, js))
    if isinstance(js, dict) and set(js) == {"bigint"}:  # an integer as a Python int
        return isinstance(python, int) and str(python) == js["bigint"]
    return python == js


def _as_file(config: GenerationConfig) -> str:
    """A model file's nextword.generation JSON for ``config``, as the exporter writes it."""
    return json.dumps(config.changes())


def test_nextword_webs_fields_are_generation_configs_in_camel_case_with_its_defaults():
    js = _node([])
    python = [[camel(f.name), f.name, default(f)] for f in FIELDS]
    assert [row[:2] for row in js["fields"]] == [row[:2] for row in python], (
        "web/src/generation.js's FIELDS must list GenerationConfig's fields in its order, each as "
        "[camelCase, snake_case, default]"
    )
    wrong = [
        (py, value, row[2])
        for (_, py, value), row in zip(python, js["fields"], strict=True)
        if not _same(value, row[2])
    ]
    assert not wrong, (
        f"FIELDS defaults that differ from GenerationConfig's (name, Python, JavaScript): {wrong}"
    )
    assert list(js["defaults"]) == [camel(n) for n in NAMES]
    # every option comes back from a resolved config (validate() builds it field by field)
    assert sorted(js["resolved"]) == sorted(camel(n) for n in NAMES), (
        "resolveOptions's config (validate() in web/src/generation.js) must hold every field"
    )
    wrong = [n for n in NAMES if not _same(getattr(GenerationConfig(), n), js["resolved"][camel(n)])]
    assert not wrong, f"resolveOptions(DEFAULTS, {{}}) differs from GenerationConfig() in {wrong}"


def test_nextword_web_reads_a_files_defaults_of_every_option_as_python_does():
    """optionsFromMetadata: no stored defaults (the integer defaults judged as Python ints,
    PY_INT_DEFAULTS), and a file that stores every option (seed never: a file may not fix one)."""
    stored = {name: value for name, value in EXAMPLES.items() if name != "seed"}
    configs = [
        GenerationConfig(),
        GenerationConfig(**{n: v for n, v in stored.items() if n not in BEAMS_ALONE}),
        GenerationConfig(**{n: stored[n] for n in BEAMS_ALONE}),
    ]
    js = _node([_as_file(config) for config in configs])
    for config, got in zip(configs, js["files"], strict=True):
        assert "error" not in got, f"nextword-web refused {_as_file(config)}: {got['error']}"
        assert sorted(got) == sorted(camel(n) for n in NAMES), (
            "optionsFromMetadata's config (validate() in web/src/generation.js) must hold every field"
        )
        wrong = [
            (n, getattr(config, n), got[camel(n)])
            for n in NAMES
            if not _same(getattr(config, n), got[camel(n)])
        ]
        assert not wrong, (
            f"{_as_file(config)} read otherwise than Python reads it (name, Python, JavaScript): {wrong}"
        )


def test_py_int_defaults_are_the_integer_fields():
    """The defaults optionsFromMetadata judges as Python ints (bigint): every field whose default is an
    int, so that a file's value beside them is checked and reported as Python does."""
    text = (WEB / "src" / "generation.js").read_text(encoding="utf-8")
    found = re.search(r"const PY_INT_DEFAULTS = \{(.*?)\};", text, re.S)
    assert found, "web/src/generation.js has no `const PY_INT_DEFAULTS = {...};`: update this test"
    js = {name: int(value) for name, value in re.findall(r"(\w+): (-?\d+)n", found.group(1))}
    python = {
        camel(f.name): default(f)
        for f in FIELDS
        if isinstance(default(f), int) and not isinstance(default(f), bool)
    }
    assert js == python, (
        "web/src/generation.js's PY_INT_DEFAULTS must hold every field whose default is an int"
    )


def test_the_typescript_options_are_every_field():
    text = (WEB / "types" / "index.d.ts").read_text(encoding="utf-8")
    found = re.search(r"export interface GenerationOptions \{(.*?)\n\}", text, re.S)
    assert found, "web/types/index.d.ts has no `export interface GenerationOptions {`: update this test"
    declared = re.findall(r"^  (\w+)\?:", found.group(1), re.M)
    assert declared == [camel(n) for n in NAMES], "web/types/index.d.ts's GenerationOptions"


# --------------------------------------------------------------------------- the documentation


@pytest.mark.parametrize(
    ("document", "spelling"),
    [
        ("README.md", "python"),  # the Python API's table of options
        ("docs/serving.md", "api"),  # the completion request's parameters
        ("web/README.md", "javascript"),  # nextword-web's options
    ],
)
def test_every_option_is_documented(document, spelling):
    if spelling == "api":
        pytest.importorskip("pydantic", reason="install nextword[serve] to test the server")
        from nextword.serve.schemas import API_TO_RUNTIME

        to_api = {runtime: api for api, runtime in API_TO_RUNTIME.items()}
        names = [to_api.get(n, n) for n in NAMES if n not in NOT_IN_THE_API]
    else:
        names = [camel(n) for n in NAMES] if spelling == "javascript" else NAMES
    text = (ROOT / document).read_text(encoding="utf-8")
    missing = [name for name in names if f"`{name}`" not in text]
    assert not missing, f"{document} does not name {missing} (in backticks)"
