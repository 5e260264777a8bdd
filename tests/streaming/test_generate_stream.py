"""The generate extension with a plain HTTP client (as curl reads it): one ``data:`` event per
piece, the same text as ``/generate``."""

import json

import httpx

from tests.streaming.target import Target

ASKED = {"prompt": "the dog", "max_tokens": 6, "seed": 3}


def test_generate_stream_is_the_same_text_as_generate(target: Target) -> None:
    base = f"{target.base_url}/v2/models/{target.model}"
    with httpx.Client(timeout=30) as http:
        whole = http.post(f"{base}/generate", json=ASKED)
        assert whole.status_code == 200, whole.text
        texts = []
        with http.stream("POST", f"{base}/generate_stream", json=ASKED) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            for line in response.iter_lines():
                if line.startswith("data: "):
                    event = json.loads(line.removeprefix("data: "))
                    assert event["model_name"] == target.model
                    texts.append(event["text"])
    assert len(texts) == 6
    assert "".join(texts) == whole.json()["text"]
