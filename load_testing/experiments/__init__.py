"""One-off measurements that answered a question the benchmark does not ask every run.

Each module starts with the question it answered and the answer; the figures are in
docs/performance.md. They share the benchmark's helpers and are run with
``bazel run //load_testing/experiments:<name>``.
"""
