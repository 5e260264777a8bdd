"""The local launcher behind ``bazel run //:up``: brokers (if needed), services, Ctrl-C to stop."""
