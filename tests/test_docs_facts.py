"""What the docs state about the bundled model file holds for the file shipped: a retrained model must
come with the docs that describe it (these figures once described a previous file)."""

import json
import re
from pathlib import Path

import pytest

from nextword.runtime.default import BUNDLED_MODEL
from nextword.runtime.model_check import inspect_model_file

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _stated(doc: str, pattern: str) -> float:
    found = re.findall(pattern, (DOCS / doc).read_text())
    assert len(found) == 1, f"{doc}: expected one match of {pattern!r}, found {found}"
    return float(found[0])


def test_security_md_states_the_bundled_files_bounds_and_metadata():
    report = inspect_model_file(BUNDLED_MODEL)
    bounds = report.bounds
    assert _stated("security.md", r"The bundled model's largest is ([\d.]+) MB") == round(
        bounds.largest_tensor_bytes / 1e6, 2
    )
    assert _stated("security.md", r"the bundled model's bound is ([\d.]+) MB") == round(
        bounds.total_bytes / 1e6, 2
    )
    assert _stated("security.md", r"The bundled model needs ([\d.]+) M") == round(
        bounds.macs_per_token / 1e6, 2
    )
    sizes = {
        key: len(value.encode())
        for key, value in report.metadata.values.items()
        if key != "nextword.tokenizer"
    }
    largest = max(sizes, key=sizes.__getitem__)
    stated = re.search(
        r"the bundled model's largest \(its (\w+)\) is ([\d.]+) kB", (DOCS / "security.md").read_text()
    )
    assert stated is not None
    assert (f"nextword.{stated.group(1)}", float(stated.group(2))) == (
        largest,
        round(sizes[largest] / 1000, 1),
    )


def test_model_format_md_states_the_bundled_files_zero_point_and_tokenizer_version():
    onnx = pytest.importorskip("onnx", reason="reading initializers needs the onnx package (the train extra)")
    from onnx import numpy_helper

    model = onnx.load(BUNDLED_MODEL)
    gather = next(node for node in model.graph.node if node.op_type == "Gather")
    # The quantized embedding's zero point: in a tied file also the output layer's weights'.
    dequantize = next(
        n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] == gather.output[0]
    )
    initializers = {i.name: i for i in model.graph.initializer}
    zero_point = int(numpy_helper.to_array(initializers[dequantize.input[2]]))
    assert _stated("model-format.md", r"zero point (\d+) in the bundled file") == zero_point
    tokenizer = json.loads(next(p.value for p in model.metadata_props if p.key == "nextword.tokenizer"))
    assert (
        _stated("model-format.md", r"the bundled model's tokenizer\s+is version (\d)") == tokenizer["version"]
    )
