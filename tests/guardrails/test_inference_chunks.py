"""How a classifier cuts length-sorted windows into runs (guardrails.inference.classifier.chunks)."""

from __future__ import annotations

import itertools
import random

from guardrails.inference.classifier import chunks


def cost(lengths, cuts, run_cost):
    return sum(run_cost + (b - a) * lengths[b - 1] for a, b in cuts)


def brute_force(lengths, max_batch, run_cost):
    n = len(lengths)
    best = None
    for mask in itertools.product([0, 1], repeat=n - 1):
        bounds = [0] + [i + 1 for i, m in enumerate(mask) if m] + [n]
        cuts = list(zip(bounds, bounds[1:]))
        if any(b - a > max_batch for a, b in cuts):
            continue
        c = cost(lengths, cuts, run_cost)
        best = c if best is None else min(best, c)
    return best


def test_cuts_cover_every_window_once_in_order_within_max_batch():
    rng = random.Random(0)
    for _ in range(50):
        lengths = sorted(rng.randint(3, 256) for _ in range(rng.randint(1, 80)))
        for mb in (1, 4, 32):
            cuts = chunks(lengths, mb, 24.0)
            assert cuts[0][0] == 0 and cuts[-1][1] == len(lengths)
            assert all(a < b and b - a <= mb for a, b in cuts)
            assert all(cuts[i][1] == cuts[i + 1][0] for i in range(len(cuts) - 1))


def test_cuts_are_optimal():
    rng = random.Random(1)
    for _ in range(40):
        lengths = sorted(rng.randint(3, 120) for _ in range(rng.randint(1, 9)))
        for mb, rc in ((3, 0.0), (8, 24.0), (8, 200.0)):
            assert abs(cost(lengths, chunks(lengths, mb, rc), rc) - brute_force(lengths, mb, rc)) < 1e-9


def test_ten_sentences_are_not_all_padded_to_the_longest():
    lengths = [8, 9, 11, 14, 16, 20, 25, 31, 45, 60]
    cuts = chunks(lengths, 32, 24.0)
    assert len(cuts) > 1
    assert cost(lengths, cuts, 0.0) < 0.7 * len(lengths) * max(lengths)  # padded tokens actually run


def test_infinite_run_cost_gives_plain_batches_and_empty_input_none():
    assert chunks(list(range(10)), 4, float("inf")) == [(0, 4), (4, 8), (8, 10)]
    assert chunks([], 4, 24.0) == []
    assert chunks([5] * 7, 32, 24.0) == [(0, 7)]  # equal lengths: one run
