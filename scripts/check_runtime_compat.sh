#!/usr/bin/env bash
# Install the runtime alone into a fresh venv for each (python, numpy, onnxruntime) combination and
# generate from MODEL there. Used to establish the lower bounds in docs/compatibility.md.
#   scripts/check_runtime_compat.sh MODEL.onnx "python3.10 numpy==1.24.* onnxruntime==1.17.*" ...
set -euo pipefail
export ORT_DISABLE_TELEMETRY="${ORT_DISABLE_TELEMETRY:-1}"  # onnxruntime 1.29+'s telemetry, as nextword's command
model=$(realpath "$1"); shift
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
check='
import sys, numpy, onnxruntime
import nextword.runtime as rt
model = rt.load(sys.argv[1])
text = model.generate("a neural network", max_words=30, seed=1)
assert text == model.generate("a neural network", max_words=30, seed=1)
ppl = rt.evaluate(model, ["A neural network is trained on data. The network learns weights."]).perplexity
assert "tensorflow" not in sys.modules
print(f"python {sys.version.split()[0]}, numpy {numpy.__version__}, onnxruntime {onnxruntime.__version__}: "
      f"ok, perplexity {ppl:.3f}, text {text[:40]!r}")
'
for combo in "$@"; do
  read -r python pins <<<"$combo"
  env="$work/$(echo "$combo" | tr -c 'a-zA-Z0-9' _)"
  "$python" -m venv "$env"
  "$env/bin/pip" install -q $pins "$root" 2>&1 | grep -v '^WARNING' || true
  "$env/bin/python" -c "$check" "$model"
done
