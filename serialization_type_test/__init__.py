"""Serialization format experiments: which wire format should Conveyor carry.

The package extends its ``__path__`` so that generated ``payloads_pb2`` modules, which protoc
writes beside ``payloads.proto`` into another root (``/tmp/gen`` in development, the same
runfiles directory under Bazel), import as ``serialization_type_test.payloads_pb2``.
"""

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
