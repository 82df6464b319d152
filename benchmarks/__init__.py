"""nextword's benchmarks: programs that measure speed, memory, size and quality and print Markdown tables.

Run each from the repository root as a module, ``python -m benchmarks.NAME [options]`` (``--help`` on
each); ``python -m benchmarks.run_all`` (what ``make bench`` runs) runs the ones behind
docs/benchmarks.md and rewrites it; ``python -m benchmarks`` lists them all.

The shared helpers, one job each:

- ``paths``: where the repository, the cache, the results and the documents are;
- ``environment``: the machine and the versions of the packages that matter;
- ``report``: Markdown tables and number formatting;
- ``timing``: summary statistics and timers run in interleaved rounds;
- ``childproc``: child processes with their wall time and peak memory;
- ``results``: each benchmark's figures as JSON under ``benchmarks/.cache/results/``;
- ``bench_model``: the trained model most benchmarks measure (trained and exported once, cached);
- ``shipped``: the bundled int8 model and its fp32 twin;
- ``decoding``: timers of the runtime's ``generate()``;
- ``keras_loop`` and ``keras_twin``: the notebook's generation loop, and a Keras model holding an ONNX
  file's weights;
- ``plots``, ``document``: the figures and the document that ``run_all`` writes.

The benchmarks use the library's public API only, never a name that starts with an underscore.
"""

from nextword.cli.telemetry import telemetry_off

# These are programs, not a library: they run onnxruntime as the nextword command does, without its
# telemetry (docs/security.md), unless ORT_DISABLE_TELEMETRY is set already; set here, before any of
# them imports onnxruntime (it reads the variable then).
telemetry_off()
