"""Train ModelC's word-level n-gram table on a text and write it as JSON.

The table counts, over the text's words (split on white space, punctuation kept), which word
follows each word (``bigrams``) and each pair of words (``trigrams``), the contexts lower-cased,
and how often each word occurs (``unigrams``). Keys are sorted: the same text gives the same
file, byte for byte.

Usage: ``python -m models.model_c.train CORPUS OUTPUT`` (Bazel runs it in a genrule on
``corpus.txt``).
"""

import argparse
import json
import os
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

FORMAT = 1
"""The table's format version (``format`` in the file)."""


def words(text: str) -> list[str]:
    """The text's words, as the table counts them."""
    return text.split()


def train(text: str) -> dict[str, Any]:
    """Count the n-grams of ``text`` (see the module doc)."""
    tokens = words(text)
    if len(tokens) < 3:
        raise ValueError("the corpus needs at least three words")
    bigrams: defaultdict[str, Counter[str]] = defaultdict(Counter)
    trigrams: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for i, word in enumerate(tokens):
        if i >= 1:
            bigrams[tokens[i - 1].lower()][word] += 1
        if i >= 2:
            trigrams[f"{tokens[i - 2].lower()} {tokens[i - 1].lower()}"][word] += 1
    return {
        "format": FORMAT,
        "unigrams": dict(sorted(Counter(tokens).items())),
        "bigrams": {key: dict(sorted(bigrams[key].items())) for key in sorted(bigrams)},
        "trigrams": {key: dict(sorted(trigrams[key].items())) for key in sorted(trigrams)},
    }


def write(corpus: Path, output: Path) -> Path:
    """Train on the text at ``corpus`` and write the table to ``output`` atomically."""
    table = train(corpus.read_text(encoding="utf-8"))
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps(table, sort_keys=True, separators=(",", ":")), encoding="utf-8")
    os.replace(partial, output)
    return output


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("corpus", type=Path, help="the text to train on (UTF-8)")
    parser.add_argument("output", type=Path, help="where to write the table (JSON)")
    args = parser.parse_args()
    write(args.corpus, args.output)


if __name__ == "__main__":
    main()
