"""ModelB is a real classifier: the bundled (or dev-trained) model separates iris classes."""

import math
from pathlib import Path

import pytest
from sklearn.datasets import load_iris

from models.model_b import ModelB
from models.model_b.config import BUNDLED_MODEL, ModelBSettings
from models.model_b.model import resolve_model_path
from proto import model_b_pb2
from worker_base import InvalidRequest


async def _predict(model: ModelB, features: list[float]) -> model_b_pb2.ModelBResponse:
    body = model_b_pb2.ModelBRequest(features=features).SerializeToString()
    return await model.process_request(body)


@pytest.mark.asyncio
async def test_predicts_iris_classes_accurately() -> None:
    model = ModelB()
    await model.load()
    iris = load_iris()
    correct = 0
    for features, target in zip(iris.data, iris.target, strict=True):
        response = await _predict(model, [float(x) for x in features])
        assert math.isclose(sum(response.probabilities.values()), 1.0, rel_tol=1e-6)
        correct += response.label == iris.target_names[target]
    assert correct / len(iris.target) > 0.9


@pytest.mark.asyncio
async def test_wrong_feature_count_is_invalid_request() -> None:
    model = ModelB()
    await model.load()
    with pytest.raises(InvalidRequest) as caught:
        await _predict(model, [1.0, 2.0])
    assert caught.value.field == "features"


def test_configured_path_wins() -> None:
    settings = ModelBSettings(path=Path("/somewhere/model.joblib"))
    assert str(resolve_model_path(settings)) == "/somewhere/model.joblib"


def test_bundled_model_is_used_when_present() -> None:
    if BUNDLED_MODEL.exists():
        assert resolve_model_path(ModelBSettings()) == BUNDLED_MODEL
    else:
        assert resolve_model_path(ModelBSettings()).exists()


@pytest.mark.asyncio
async def test_non_finite_features_are_invalid_requests() -> None:
    model = ModelB()
    await model.load()
    for bad in (math.nan, math.inf, -math.inf, 1.7976931348623157e308, -1e101):
        with pytest.raises(InvalidRequest) as caught:
            await _predict(model, [5.1, bad, 1.4, 0.2])
        assert caught.value.field == "features[1]"


@pytest.mark.asyncio
async def test_a_batch_answers_each_flower_and_fails_only_the_bad_one() -> None:
    model = ModelB()
    await model.load()
    assert ModelB.implements_batching() and ModelB.max_batch_size > 1
    bodies = [
        model_b_pb2.ModelBRequest(features=[5.1, 3.5, 1.4, 0.2]).SerializeToString(),
        model_b_pb2.ModelBRequest(features=[1.0]).SerializeToString(),
        model_b_pb2.ModelBRequest(features=[6.7, 3.0, 5.2, 2.3]).SerializeToString(),
        b"\xff\xff",
    ]
    outcomes = await model.process_batch(bodies)
    assert len(outcomes) == 4
    first, second, third, fourth = outcomes
    assert isinstance(first, model_b_pb2.ModelBResponse) and first.label == "setosa"
    assert isinstance(second, InvalidRequest) and second.field == "features"
    assert isinstance(third, model_b_pb2.ModelBResponse) and third.label == "virginica"
    assert isinstance(fourth, Exception)
    alone = await _predict(model, [6.7, 3.0, 5.2, 2.3])
    assert alone.label == third.label  # batching changes the answer by rounding at most
    for name, probability in alone.probabilities.items():
        assert math.isclose(probability, third.probabilities[name], rel_tol=1e-9)
