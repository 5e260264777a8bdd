"""Redis key layout of the registry (under the configurable ``Settings.key_prefix``)."""

from typing import Final

DEFAULT_KEY_PREFIX: Final = "conveyor:registry:"

MODELS_SET: Final = "models"
"""Set of every model name ever registered."""

VERSIONS_HASH: Final = "versions:"
"""Hash ``versions:<name>``: version -> its registration (JSON)."""

SCHEMAS_HASH: Final = "schemas:"
"""Hash ``schemas:<name>``: version -> fingerprint of its schema (never changes once set)."""

INSTANCES_ZSET: Final = "instances:"
"""Sorted set ``instances:<name>``: instance id scored by its expiry time (Unix ms)."""

INSTANCE_VERSIONS_HASH: Final = "instance-versions:"
"""Hash ``instance-versions:<name>``: instance id -> the version it serves."""

INSTANCE_FEATURES_HASH: Final = "instance-features:"
"""Hash ``instance-features:<name>``: instance id -> the features it announced, comma-joined
(no entry: none, as for an instance registered before features existed)."""
