"""The request bodies of ``/v1/completions`` and ``/v1/chat/completions``, and what of them the
gateway serves.

Fields OpenAI's API defines that change nothing here are accepted and ignored (``top_p``,
``presence_penalty``, ``frequency_penalty``, ``logit_bias``, ``user``, ``metadata``, ``store``,
...); unknown fields too, as OpenAI's clients send new ones. Fields asking for something the
gateway cannot do are refused with a 400 naming them (``unsupported``): ``n`` above 1,
``logprobs``, ``echo``, ``best_of`` above 1, ``suffix``, ``stop``, tools and function calls, a
``response_format`` other than text, ``stream_options`` without ``stream``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

from api.openai.errors import OpenAIRefusal

__all__ = ["ChatMessage", "ChatRequest", "CompletionRequest", "StreamOptions", "TextPart"]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class StreamOptions(_Lenient):
    """``stream_options``."""

    include_usage: StrictBool = False
    """Send one more chunk before ``[DONE]``: no choices, the request's ``usage``."""


class _Common(_Lenient):
    model: StrictStr = Field(description="A model name (GET /v1/models), or name:version.")
    max_tokens: StrictInt | None = Field(default=None, ge=1)
    temperature: StrictFloat | None = Field(default=None, ge=0, le=2)
    seed: StrictInt | None = None
    n: StrictInt | None = Field(default=None, ge=1)
    stream: StrictBool | None = None
    stream_options: StreamOptions | None = None
    stop: StrictStr | list[StrictStr] | None = None
    top_p: StrictFloat | None = None
    presence_penalty: StrictFloat | None = None
    frequency_penalty: StrictFloat | None = None
    logit_bias: dict[str, Any] | None = None
    user: StrictStr | None = None

    def _refuse_common(self) -> None:
        if self.n is not None and self.n > 1:
            raise unsupported("n", "one choice per request (n = 1)")
        if self.stop:
            raise unsupported("stop", "no stop sequences")
        if self.stream_options is not None and not self.stream:
            raise OpenAIRefusal(
                "stream_options is only allowed when stream is true", param="stream_options"
            )


class CompletionRequest(_Common):
    """``POST /v1/completions``."""

    prompt: StrictStr | list[StrictStr]
    echo: StrictBool | None = None
    logprobs: StrictInt | None = None
    best_of: StrictInt | None = None
    suffix: StrictStr | None = None

    def text(self) -> str:
        """The one prompt, or a 400 (``unsupported``) for anything else."""
        self._refuse_common()
        if self.echo:
            raise unsupported("echo", "no echo of the prompt")
        if self.logprobs is not None:
            raise unsupported("logprobs", "no log probabilities")
        if self.best_of is not None and self.best_of > 1:
            raise unsupported("best_of", "one candidate per request (best_of = 1)")
        if self.suffix:
            raise unsupported("suffix", "no suffix")
        if isinstance(self.prompt, str):
            return self.prompt
        if len(self.prompt) != 1:
            raise unsupported("prompt", "one prompt per request (a string, or a list of one)")
        return self.prompt[0]


class TextPart(_Lenient):
    """A part of a message's content; only text parts are served."""

    type: StrictStr
    text: StrictStr | None = None


class ChatMessage(_Lenient):
    """A message of the conversation."""

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: StrictStr | list[TextPart] | None = None
    name: StrictStr | None = None
    tool_calls: list[Any] | None = None


class ChatRequest(_Common):
    """``POST /v1/chat/completions``."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: StrictInt | None = Field(default=None, ge=1)
    logprobs: StrictBool | None = None
    top_logprobs: StrictInt | None = None
    tools: list[Any] | None = None
    tool_choice: Any = None
    functions: list[Any] | None = None
    function_call: Any = None
    response_format: dict[str, Any] | None = None
    modalities: list[StrictStr] | None = None

    def limit(self) -> int | None:
        """The most pieces to generate: ``max_completion_tokens``, else ``max_tokens``."""
        return self.max_completion_tokens or self.max_tokens

    def check(self) -> None:
        """Refuse (400, ``unsupported``) what the gateway cannot do."""
        self._refuse_common()
        if self.logprobs or self.top_logprobs is not None:
            raise unsupported("logprobs", "no log probabilities")
        if self.tools or self.functions:
            raise unsupported("tools" if self.tools else "functions", "no tools")
        if self.tool_choice not in (None, "none") or self.function_call not in (None, "none"):
            raise unsupported("tool_choice" if self.tool_choice else "function_call", "no tools")
        if self.response_format is not None and self.response_format.get("type") != "text":
            raise unsupported("response_format", "text responses only")
        if self.modalities is not None and self.modalities != ["text"]:
            raise unsupported("modalities", "text only")


def unsupported(param: str, serves: str) -> OpenAIRefusal:
    """The 400 for a field asking what the gateway does not do (``serves``: what it does)."""
    return OpenAIRefusal(
        f"{param}: not supported by this server ({serves})", param=param, code="unsupported"
    )
