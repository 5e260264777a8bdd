"""Checking a registration's schemas, and the registry's views of a stored model."""

import base64
import binascii

from conveyor.descriptors import describe_message, find_message, load_pool
from conveyor.errors import SchemaError
from conveyor.registry_api import MessageSchema, ModelDetail, ModelSummary, Registration
from registry.exceptions import InvalidSchema
from registry.store import ModelRecord


def validate(registration: Registration) -> None:
    """Raise ``InvalidSchema`` unless the descriptor set holds both message types."""
    try:
        pool = load_pool(base64.b64decode(registration.descriptor_set, validate=True))
        find_message(pool, registration.request_type)
        find_message(pool, registration.response_type)
    except (binascii.Error, SchemaError) as e:
        raise InvalidSchema(str(e)) from e


def summary(record: ModelRecord) -> ModelSummary:
    """The model as ``GET /models`` lists it."""
    return ModelSummary(
        name=record.name,
        status="alive" if record.instances > 0 else "dead",
        version=record.registration.version,
        instances=record.instances,
        queue=record.registration.queue,
    )


def detail(record: ModelRecord) -> ModelDetail:
    """The model as ``GET /models/{name}`` shows it: schemas with readable fields, an example."""
    reg = record.registration
    pool = load_pool(base64.b64decode(reg.descriptor_set))

    def schema(full_name: str) -> MessageSchema:
        described = describe_message(find_message(pool, full_name))
        return MessageSchema.model_validate({**described, "descriptor_set": reg.descriptor_set})

    return ModelDetail(
        **summary(record).model_dump(),
        request=schema(reg.request_type),
        response=schema(reg.response_type),
        example_request=reg.example_request,
    )
