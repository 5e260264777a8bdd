"""Sampling words from ModelC's n-gram table (``models.model_c.train``).

Each next word is drawn from the words that followed the last two words in the text (the
context, lower-cased); when the text never had that pair, from those that followed the last
word; when not that either, from all its words. A draw weighs each candidate by its count
raised to ``1 / temperature`` (temperature 0: the most frequent, the first in sorted order on
a tie). Candidates are kept in sorted order and the draw uses ``random.Random(seed)``: the same
prompt, seed and temperature give the same words.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from models.model_c.train import FORMAT

__all__ = ["Ngrams"]

_Candidates = tuple[tuple[str, ...], tuple[float, ...]]
"""Words and the logarithms of their counts, in sorted order."""


class Ngrams:
    """A trained table, ready to sample from."""

    def __init__(self, table: Mapping[str, Any]) -> None:
        if table.get("format") != FORMAT:
            raise ValueError(f"not a ModelC table of format {FORMAT}")
        self._unigrams = _candidates(table["unigrams"])
        self._bigrams = {key: _candidates(c) for key, c in table["bigrams"].items()}
        self._trigrams = {key: _candidates(c) for key, c in table["trigrams"].items()}

    @classmethod
    def load(cls, path: Path) -> Ngrams:
        """Read a table written by ``train.write``."""
        return cls(json.loads(path.read_text(encoding="utf-8")))

    @property
    def vocabulary(self) -> tuple[str, ...]:
        """Every word the table knows, sorted."""
        return self._unigrams[0]

    def generate(self, prompt: str, count: int, seed: int, temperature: float) -> Iterator[str]:
        """Yield ``count`` words continuing ``prompt`` (see the module doc)."""
        rng = random.Random(seed)
        context = [word.lower() for word in prompt.split()[-2:]]
        for _ in range(count):
            word = _draw(self._candidates(context), rng, temperature)
            yield word
            context = [*context[-1:], word.lower()]

    def _candidates(self, context: list[str]) -> _Candidates:
        if len(context) == 2:
            found = self._trigrams.get(f"{context[0]} {context[1]}")
            if found is not None:
                return found
        if context:
            found = self._bigrams.get(context[-1])
            if found is not None:
                return found
        return self._unigrams


def _candidates(counts: Mapping[str, int]) -> _Candidates:
    names = tuple(sorted(counts))
    return names, tuple(math.log(counts[name]) for name in names)


def _draw(candidates: _Candidates, rng: random.Random, temperature: float) -> str:
    names, logs = candidates
    if temperature <= 0 or len(names) == 1:
        return names[max(range(len(names)), key=logs.__getitem__)]
    top = max(logs)
    # count ** (1 / t), scaled by the largest: no overflow at a small temperature.
    weights = [math.exp((value - top) / temperature) for value in logs]
    return rng.choices(names, weights)[0]
