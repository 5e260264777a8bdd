"""ModelC: a seeded n-gram generator that streams one word a piece, and refuses what it
cannot generate."""

import json
import math
from typing import Any

import pytest

from models.model_c import ModelC, train
from models.model_c.config import BUNDLED_TABLE, CORPUS
from models.model_c.model import DEFAULT_MAX_TOKENS, MAX_TOKENS
from models.model_c.ngram import Ngrams
from proto import model_c_pb2
from worker_base import InvalidRequest
from worker_base.contracts import text_generation_problems


def _body(prompt: str = "The keeper", **fields: Any) -> bytes:
    return model_c_pb2.ModelCRequest(prompt=prompt, **fields).SerializeToString()


async def _model() -> ModelC:
    model = ModelC(chunk_delay_ms=0)
    await model.load()
    return model


async def _pieces(model: ModelC, body: bytes) -> list[str]:
    return [piece.text async for piece in model.process_stream(body)]


@pytest.mark.asyncio
async def test_streams_max_tokens_words_each_with_its_leading_space() -> None:
    model = await _model()
    pieces = await _pieces(model, _body(max_tokens=40, seed=3))
    assert len(pieces) == 40
    vocabulary = set(Ngrams.load(BUNDLED_TABLE).vocabulary) if BUNDLED_TABLE.exists() else None
    for piece in pieces:
        assert piece.startswith(" ") and piece.strip() == piece[1:] and piece[1:]
        if vocabulary is not None:
            assert piece[1:] in vocabulary


@pytest.mark.asyncio
async def test_the_same_prompt_and_seed_give_the_same_text() -> None:
    model = await _model()
    first = await _pieces(model, _body("the river", max_tokens=64, seed=11))
    again = await _pieces(model, _body("the river", max_tokens=64, seed=11))
    other = await _pieces(model, _body("the river", max_tokens=64, seed=12))
    assert first == again
    assert first != other


@pytest.mark.asyncio
async def test_without_a_stream_the_answer_is_the_pieces_joined() -> None:
    model = await _model()
    body = _body("The lighthouse stood", max_tokens=20, seed=5)
    whole = await model.process_request(body)
    assert isinstance(whole, model_c_pb2.ModelCResponse)
    assert whole.text == "".join(await _pieces(model, body))


@pytest.mark.asyncio
async def test_defaults_sixteen_words() -> None:
    model = await _model()
    assert len(await _pieces(model, _body(seed=1))) == DEFAULT_MAX_TOKENS


@pytest.mark.asyncio
async def test_temperature_zero_follows_the_text() -> None:
    """Greedy: each word is the likeliest after the last two, so a phrase of the corpus that
    only ever continues one way is continued that way."""
    model = await _model()
    pieces = await _pieces(model, _body("one hundred", max_tokens=3, temperature=0.0, seed=9))
    assert "".join(pieces) == " and twelve steps,"
    assert pieces == await _pieces(model, _body("one hundred", max_tokens=3, temperature=0.0))


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": MAX_TOKENS + 1}, "max_tokens"),
        ({"max_tokens": -1}, "max_tokens"),
        ({"temperature": -0.5}, "temperature"),
        ({"temperature": 2.5}, "temperature"),
        ({"temperature": math.nan}, "temperature"),
        ({"temperature": math.inf}, "temperature"),
    ],
)
async def test_out_of_range_requests_are_invalid(fields: dict[str, Any], field: str) -> None:
    model = await _model()
    with pytest.raises(InvalidRequest) as caught:
        await _pieces(model, _body(**fields))
    assert caught.value.field == field


@pytest.mark.asyncio
async def test_the_largest_request_is_served() -> None:
    model = await _model()
    assert len(await _pieces(model, _body(max_tokens=MAX_TOKENS, seed=2))) == MAX_TOKENS


def test_follows_the_text_generation_contract_and_streams() -> None:
    assert ModelC.text_generation and ModelC.implements_streaming()
    request, response = ModelC().get_request_format(), ModelC().get_response_format()
    assert text_generation_problems(request, response) == []


def test_the_bundled_table_is_the_corpus_trained() -> None:
    trained = train.train(CORPUS.read_text(encoding="utf-8"))
    assert json.loads(BUNDLED_TABLE.read_text(encoding="utf-8")) == trained
    assert len(CORPUS.read_text(encoding="utf-8")) > 4000


def test_training_is_deterministic_and_counts_followers() -> None:
    table = train.train("a b c a b d")
    assert table == train.train("a b c a b d")
    assert table["trigrams"]["a b"] == {"c": 1, "d": 1}
    assert table["bigrams"]["b"] == {"c": 1, "d": 1}
    assert table["unigrams"] == {"a": 2, "b": 2, "c": 1, "d": 1}
    with pytest.raises(ValueError, match="three words"):
        train.train("too short")
