"""rank_folded: own and inclusive shares of py-spy's folded stacks."""

from load_testing.profiling import Ranked, rank_folded

STACKS = [
    "main (a.py:1);serve (a.py:5);parse (b.py:3) 6",
    "main (a.py:1);serve (a.py:5);write (c.py:9) 3",
    "main (a.py:1);loop (a.py:2);loop (a.py:2) 1",  # recursion: counted once per stack
    "",
    "not a stack line",
]


def _rounded(ranked: Ranked) -> Ranked:
    return [(frame, round(share, 9)) for frame, share in ranked]


def test_own_samples_are_the_innermost_frame() -> None:
    own, _ = rank_folded(STACKS, top=10)
    assert _rounded(own) == [
        ("parse (b.py:3)", 0.6),
        ("write (c.py:9)", 0.3),
        ("loop (a.py:2)", 0.1),
    ]


def test_inclusive_samples_count_each_frame_once_per_stack() -> None:
    _, inclusive = rank_folded(STACKS, top=3)
    assert _rounded(inclusive) == [
        ("main (a.py:1)", 1.0),
        ("serve (a.py:5)", 0.9),
        ("parse (b.py:3)", 0.6),
    ]


def test_no_samples_ranks_nothing() -> None:
    assert rank_folded(["garbage", ""], top=5) == ([], [])
