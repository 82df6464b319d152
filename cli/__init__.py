"""The ``nextword`` command line: a thin layer over the runtime, training and export APIs."""
