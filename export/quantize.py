"""int8 dynamic quantization of an exported graph, with onnxruntime's own quantization tools."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import onnx
from onnxruntime.quantization import QuantType, quantize_dynamic

__all__ = ["QUANTIZED_OPS", "quantize_int8"]

# Embedding (Gather), LSTM and the output projection (MatMul) hold nearly every weight.
QUANTIZED_OPS = ("Gather", "LSTM", "MatMul")


def quantize_int8(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Return ``proto`` with its weights stored as int8 (dynamic quantization: activations are
    quantized on the fly, so no calibration data is needed). The LSTM becomes com.microsoft's
    DynamicQuantizeLSTM, the projection MatMulInteger, the embedding an int8 table dequantized at load."""
    with tempfile.TemporaryDirectory(prefix="nextword-int8-") as folder:
        source, target = Path(folder) / "fp32.onnx", Path(folder) / "int8.onnx"
        onnx.save(proto, str(source))
        root = logging.getLogger()
        root.addFilter(_drop_preprocessing_advice)
        try:
            quantize_dynamic(
                str(source),
                str(target),
                weight_type=QuantType.QInt8,
                op_types_to_quantize=list(QUANTIZED_OPS),
            )
        finally:
            root.removeFilter(_drop_preprocessing_advice)
        quantized = onnx.load(str(target))
    del quantized.metadata_props[:]  # the exporter writes the metadata afresh
    return quantized


def _drop_preprocessing_advice(record: logging.LogRecord) -> bool:
    """quantize_dynamic logs advice to run shape-inference pre-processing, meant for vision models with
    static shapes; our graph has dynamic batch and time axes, so the advice does not apply."""
    return "pre-processing before quantization" not in record.getMessage()
