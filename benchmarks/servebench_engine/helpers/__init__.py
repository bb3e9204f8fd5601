"""Scripts the engine runs under OTHER interpreters, by path (variants/helper_process.py).

``quantize_inc.py`` runs in the Neural Compressor environment (numpy<2, onnx 1.16);
``convert_tflite.py`` (onnx2torch + litert-torch, a second torch and jax) and
``quantize_tflite.py`` (ai-edge-quantizer) in the TFLite converter's, and share ``script_io.py``
(how a helper prints its result, its error and its progress). Those environments have neither
the engine nor its dependencies' versions, and the engine starts them without its PYTHONPATH: a
script here must NOT import servebench_engine (nor anything from this package; a sibling module
by its own name is fine); it talks to the engine only through its arguments, its files and its
exit status. tests/engine/test_helpers.py checks that none does.
"""

from pathlib import Path

HERE = Path(__file__).resolve().parent
QUANTIZE_INC = HERE / "quantize_inc.py"
CONVERT_TFLITE = HERE / "convert_tflite.py"
QUANTIZE_TFLITE = HERE / "quantize_tflite.py"
# Imported by the two TFLite scripts: part of what each one runs (variants/reuse.py keys).
SCRIPT_IO = HERE / "script_io.py"
