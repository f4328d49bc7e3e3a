"""quantfleet.calibrate: the program that runs inside the calibration Job.

`quantfleet calibrate --recipe-json '<json>'` loads a base model, calibrates it with
llm-compressor or NVIDIA ModelOpt as the recipe says, measures how many calibration
tokens every MoE expert saw, compares perplexity before and after, publishes the
checkpoint atomically and writes the result manifest the operator parses.

This is the only package that imports torch, transformers, llmcompressor and modelopt
(the `calibrate` extra); they are imported lazily so `quantfleet calibrate --help` and
the pure modules here (`schemes`, `stdlib_text`) stay cheap.
"""
