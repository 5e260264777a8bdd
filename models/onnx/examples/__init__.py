"""The ONNX worker's example graphs, built by Bazel genrules (deterministic bytes)."""
