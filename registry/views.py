"""Checking a registration's schemas, and the registry's views of a stored model."""

import base64
import binascii

from conveyor.descriptors import describe_message, find_message, load_pool
from conveyor.errors import SchemaError
from conveyor.registry_api import (
    MessageSchema,
    ModelDetail,
    ModelSummary,
    Registration,
    VersionSummary,
)
from registry.exceptions import InvalidSchema, ModelNotFound
from registry.store import ModelRecord


def validate(registration: Registration) -> None:
    """Raise ``InvalidSchema`` unless the descriptor set holds both message types."""
    try:
        pool = load_pool(base64.b64decode(registration.descriptor_set, validate=True))
        find_message(pool, registration.request_type)
        find_message(pool, registration.response_type)
    except (binascii.Error, ValueError, SchemaError) as e:  # ValueError: not ASCII
        raise InvalidSchema(str(e)) from e


def _version(record: ModelRecord, version: str) -> VersionSummary:
    stored = record.versions[version]
    return VersionSummary(
        version=version,
        status="alive" if stored.instances > 0 else "dead",
        instances=stored.instances,
        queue=stored.registration.queue,
        features=sorted(stored.features),
        max_batch_size=stored.registration.max_batch_size,
    )


def summary(record: ModelRecord, version: str | None = None) -> ModelSummary:
    """The model as ``GET /models`` lists it: ``version`` (default: the default version)."""
    chosen = _version(record, version or record.default_version())
    return ModelSummary(
        name=record.name,
        **chosen.model_dump(),
        versions=[_version(record, v) for v in record.ordered()],
    )


def detail(record: ModelRecord, version: str | None = None) -> ModelDetail:
    """The model's version as ``GET /models/{name}[/versions/{v}]`` shows it, with schemas."""
    if version is not None and version not in record.versions:
        raise ModelNotFound(f"model {record.name!r} has no version {version!r}")
    version = version or record.default_version()
    reg = record.versions[version].registration
    pool = load_pool(base64.b64decode(reg.descriptor_set))

    def schema(full_name: str) -> MessageSchema:
        described = describe_message(find_message(pool, full_name))
        return MessageSchema.model_validate({**described, "descriptor_set": reg.descriptor_set})

    return ModelDetail(
        **summary(record, version).model_dump(),
        request=schema(reg.request_type),
        response=schema(reg.response_type),
        example_request=reg.example_request,
    )
