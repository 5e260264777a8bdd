"""OpenAI's requests onto a model's text-generation contract, and its pieces back to text.

A model serves the OpenAI-compatible endpoints when its live version announces the
``text-generation`` feature (``conveyor.protocol.TEXT_GENERATION_FEATURE``): its request
message has a string ``prompt`` and may have an integer ``max_tokens`` and ``seed`` and a number
``temperature``; its response (and each piece of a stream) has a string ``text``.

- ``model``: ``<name>`` (its default version) or ``<name>:<version>``.
- ``prompt`` (completions) is the prompt as given. A chat's ``messages`` become one prompt by
  ``chat_prompt``: one line ``<role>: <text>`` per message (``developer`` written as
  ``system``), then a last line ``assistant:``. Only text content is served.
- ``max_tokens`` (chat: ``max_completion_tokens``, else ``max_tokens``) -> ``max_tokens``:
  the most pieces to yield (a piece is a token here); ``seed`` -> ``seed``; ``temperature``
  -> ``temperature``, each only when the request message has the field (else ignored).
- Usage: ``completion_tokens`` is the number of pieces, ``prompt_tokens`` the prompt's
  whitespace-separated words (the gateway has no tokenizer).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from google.protobuf.message import DecodeError, Message

from api.catalog import check_name
from api.exceptions import InvalidResult, ModelNotFound, ModelUnavailable
from api.oip.ports import ModelView
from api.openai.errors import OpenAIRefusal
from api.openai.requests import ChatMessage, unsupported
from conveyor.protocol import TEXT_GENERATION_FEATURE
from conveyor.registry_api import ModelSummary

__all__ = [
    "TextCatalog",
    "TextModel",
    "chat_prompt",
    "finish_reason",
    "piece_text",
    "request_payload",
    "resolve",
    "serves",
    "usage",
]


class TextModel(ModelView, Protocol):
    """A model version as the catalog resolves it, with its live instances' features."""

    @property
    def features(self) -> frozenset[str]: ...


class TextCatalog(Protocol):
    """The gateway's catalog (``api.catalog.ModelCatalog``) as the ``/v1`` routes use it."""

    async def get(self, name: str, version: str | None = None) -> TextModel:
        """Resolve a model (and version): ``ModelNotFound``, ``RegistryUnavailable``."""
        ...

    async def list(self) -> list[ModelSummary]:
        """Every registered model, its default version's state and features first."""
        ...


def serves(summary: ModelSummary) -> bool:
    """Whether a listed model serves the ``/v1`` endpoints: its default version is alive and
    announces text generation."""
    return summary.status == "alive" and TEXT_GENERATION_FEATURE in summary.features


async def resolve(catalog: TextCatalog, model: str) -> TextModel:
    """The model version ``model`` names (``name`` or ``name:version``); ``ModelNotFound``
    for an unknown one, ``ModelUnavailable`` without a live worker, a 400 for a model that
    does not follow the text-generation contract."""
    name, _, version = model.partition(":")
    check_name(name, version or None)
    info = await catalog.get(name, version or None)
    if not info.alive:
        raise ModelUnavailable(
            f"model {info.name!r} version {info.version} has no live worker", model=info.name
        )
    if TEXT_GENERATION_FEATURE not in info.features:
        raise OpenAIRefusal(
            f"model {model!r} does not follow the text-generation contract; GET /v1/models "
            "lists those that do",
            param="model",
            code="model_not_supported",
        )
    return info


def not_found(model: str) -> ModelNotFound:
    """The 404 of a model the ``/v1`` endpoints do not serve."""
    return ModelNotFound(f"the model {model!r} does not exist", model=model)


def _text(message: ChatMessage, index: int) -> str:
    if message.role in ("tool", "function") or message.tool_calls:
        raise unsupported(f"messages.{index}", "no tool messages")
    if message.content is None:
        return ""
    if isinstance(message.content, str):
        return message.content
    texts = []
    for part in message.content:
        if part.type != "text" or part.text is None:
            raise unsupported(f"messages.{index}.content", "text content only")
        texts.append(part.text)
    return "".join(texts)


def chat_prompt(messages: Sequence[ChatMessage]) -> str:
    """A conversation as one prompt (see the module doc)."""
    lines = []
    for index, message in enumerate(messages):
        role = "system" if message.role == "developer" else message.role
        lines.append(f"{role}: {_text(message, index)}")
    lines.append("assistant:")
    return "\n".join(lines)


def request_payload(
    info: TextModel,
    prompt: str,
    *,
    max_tokens: int | None,
    seed: int | None,
    temperature: float | None,
) -> bytes:
    """The model's serialized request message (see the module doc); a 400 for a value its
    field cannot hold."""
    message = info.request_class()
    fields = message.DESCRIPTOR.fields_by_name
    values: dict[str, Any] = {"prompt": prompt}
    for name, value in (("max_tokens", max_tokens), ("seed", seed), ("temperature", temperature)):
        if value is not None and name in fields:
            values[name] = value
    for name, value in values.items():
        try:
            setattr(message, name, value)
        except (AttributeError, TypeError, ValueError) as e:
            raise OpenAIRefusal(f"{name}: {e}", param=name) from e
    return message.SerializeToString()


def piece_text(payload: bytes, info: TextModel) -> str:
    """The ``text`` of a serialized response message (a piece, or the combined result)."""
    message: Message = info.response_class()
    try:
        message.ParseFromString(payload)
    except DecodeError as e:
        raise InvalidResult(
            f"the worker returned an unreadable {info.response_class.DESCRIPTOR.full_name}",
            model=info.name,
        ) from e
    return str(getattr(message, "text", ""))


def finish_reason(pieces: int, limit: int | None) -> str:
    """``length`` when the generation stopped at ``limit`` pieces, else ``stop``."""
    return "length" if limit is not None and pieces >= limit else "stop"


def usage(prompt: str, pieces: int) -> dict[str, int]:
    """OpenAI's ``usage`` object (see the module doc for what a token is here)."""
    prompt_tokens = len(prompt.split())
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": pieces,
        "total_tokens": prompt_tokens + pieces,
    }
