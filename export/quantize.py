"""int8 dynamic quantization of an exported graph, with onnxruntime's own quantization tools."""

from __future__ import annotations

import logging
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic

from nextword.corpus.errors import OUT_OF_ROOM

__all__ = [
    "INT8_LOSS_WARNING",
    "QUANTIZED_OPS",
    "int8_loss",
    "product_weights",
    "quantize_int8",
    "store_weights_unsigned",
]

# Embedding (Gather), LSTM and the output projection (MatMul) hold nearly every weight.
QUANTIZED_OPS = ("Gather", "LSTM", "MatMul")


def quantize_int8(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Return ``proto`` with its weights stored as int8 (dynamic quantization: activations are
    quantized on the fly, so no calibration data is needed). The LSTM becomes com.microsoft's
    DynamicQuantizeLSTM, the projection MatMulInteger, the embedding an int8 table dequantized at load.
    The weights are quantized as signed int8 and stored as uint8 (:func:`store_weights_unsigned`), so
    the integer products are exact on every CPU."""
    try:
        with tempfile.TemporaryDirectory(prefix="nextword-int8-") as folder:
            source, target = Path(folder) / "fp32.onnx", Path(folder) / "int8.onnx"
            onnx.save(proto, str(source))
            root = logging.getLogger()
            handlers = list(root.handlers)
            root.addFilter(_drop_quantizer_chatter)
            try:
                quantize_dynamic(
                    str(source),
                    str(target),
                    weight_type=QuantType.QInt8,
                    op_types_to_quantize=list(QUANTIZED_OPS),
                )
            finally:
                root.removeFilter(_drop_quantizer_chatter)
                # It logs through the logging module's functions, which give a root logger without
                # handlers one of their own (logging.basicConfig): the host application's logging would
                # keep it.
                for handler in [h for h in root.handlers if h not in handlers]:
                    root.removeHandler(handler)
            quantized = onnx.load(str(target))
    except OSError as exc:  # no file named: the temporary folder's disk, which the user never chose
        if exc.filename is not None or exc.errno not in OUT_OF_ROOM:
            raise
        why = (
            f"{exc.strerror or exc} (int8 quantization's temporary files; TMPDIR=/path chooses their folder)"
        )
        raise OSError(exc.errno, why, tempfile.gettempdir()) from None
    del quantized.metadata_props[:]  # the exporter writes the metadata afresh
    store_weights_unsigned(quantized)
    # The graph quantized is canonical (export.graph.convert), and the quantizer names what it adds
    # after it, so the same graph quantizes to the same bytes. Its names stay: fine-tuning from the
    # file finds each weight's scale and zero point by them (``X_quantized``, ``X_scale``...).
    return quantized


def store_weights_unsigned(proto: onnx.ModelProto) -> list[str]:
    """Store the int8 weights of ``proto``'s integer products as uint8, in place; returns their names.

    Each weight ``q`` (int8, zero point ``z``) becomes ``q + 128`` with zero point ``z + 128``: the same
    real values, ``scale * (q - z)``, exactly. What changes is onnxruntime's kernel. With uint8
    activations and int8 weights, x86-64 CPUs without VNNI (AVX2, and AVX-512 before VNNI) multiply with
    ``vpmaddubsw``, which adds pairs of products into a saturating 16-bit sum: where activations and
    weights are both large the sum is clipped, so the same file gives other logits there than on a VNNI
    CPU, ARM, or onnxruntime-web. uint8 weights take the kernels that widen to 16 bits first and are
    exact everywhere (onnxruntime's quantization guide names the saturation; its remedy there,
    ``reduce_range``, would drop a bit of every weight instead). Covers MatMulInteger's ``B`` and
    DynamicQuantizeLSTM's ``W`` and ``R``; weights that are uint8 already are left alone.
    """
    initializers = {init.name: init for init in proto.graph.initializer}
    converted: list[str] = []
    for weight_name, zero_name in product_weights(proto):
        weight, zero = initializers.get(weight_name), initializers.get(zero_name)
        if weight is None or zero is None:  # computed, not stored: nothing to convert
            continue
        values, zero_point = numpy_helper.to_array(weight), numpy_helper.to_array(zero)
        if values.dtype != np.int8 or zero_point.dtype != np.int8:
            continue
        weight.CopyFrom(
            numpy_helper.from_array((values.astype(np.int16) + 128).astype(np.uint8), weight_name)
        )
        zero.CopyFrom(
            numpy_helper.from_array((zero_point.astype(np.int16) + 128).astype(np.uint8), zero_name)
        )
        converted.append(weight_name)
    return converted


def product_weights(proto: onnx.ModelProto) -> list[tuple[str, str]]:
    """The (weight, zero point) input names of ``proto``'s integer products: MatMulInteger's ``B`` and
    DynamicQuantizeLSTM's ``W`` and ``R``, each pair once (a weight shared by two nodes is listed once)."""
    pairs: list[tuple[str, str]] = []
    for node in proto.graph.node:
        inputs = list(node.input)
        if node.op_type == "MatMulInteger" and len(inputs) > 3:
            pairs.append((inputs[1], inputs[3]))
        elif node.op_type == "DynamicQuantizeLSTM" and len(inputs) > 11:
            pairs += [(inputs[1], inputs[9]), (inputs[2], inputs[11])]
    return list(dict.fromkeys(pairs))


def _drop_quantizer_chatter(record: logging.LogRecord) -> bool:
    """quantize_dynamic logs advice to run shape-inference pre-processing, meant for vision models with
    static shapes (our graph has dynamic batch and time axes, so it does not apply), and that a tensor
    has no quantization parameters, which dynamic quantization computes as it runs: neither is news."""
    message = record.getMessage()
    return (
        "pre-processing before quantization" not in message and "Quantization parameters for" not in message
    )


#: int8 validation perplexity over fp32's above which export warns (int8 usually costs under a percent)
INT8_LOSS_WARNING = 1.2


def int8_loss(quality: dict[str, Any]) -> str | None:
    """The warning for export's validation figures ``quality`` (``"fp32"`` and ``"int8"`` entries) where
    8-bit rounding lost much of the model: int8 perplexity over :data:`INT8_LOSS_WARNING` times fp32's.
    A short fine-tuning of an int8 base (the bundled model) does that: its weights lie on the grid the
    rounding returns them to, and a few steps move few of them past half a step. None where it did not,
    or where a figure is missing."""
    fp32, int8 = (quality.get(p, {}).get("perplexity") for p in ("fp32", "int8"))
    if not isinstance(fp32, float | int) or not isinstance(int8, float | int) or not 0 < fp32 < math.inf:
        return None
    if not int8 > INT8_LOSS_WARNING * fp32:  # a NaN too: no figure to compare
        return None
    return (
        f"int8 loses much of this model: validation perplexity {int8:.2f} against {fp32:.2f} in fp32 "
        f"({int8 / fp32:.1f}x; int8 usually costs under a percent). Rounding to 8 bits took back much of "
        "what training learned (after a short fine-tuning of an int8 base, such as the bundled model, the "
        "weights moved too little to leave that grid): export without --int8 (int8=False), or train "
        "longer or at a higher learning rate"
    )
