"""Clustering quality against recorded truth: pairwise and B-cubed precision/recall, adjusted
Rand index. Items whose truth is None are singletons (each its own class)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from math import comb


@dataclass(frozen=True)
class Scores:
    items: int
    pairwise_precision: float
    pairwise_recall: float
    bcubed_precision: float
    bcubed_recall: float
    bcubed_f1: float
    adjusted_rand: float

    def line(self) -> str:
        return (
            f"items={self.items} pairwise P={self.pairwise_precision:.3f} "
            f"R={self.pairwise_recall:.3f} | B3 P={self.bcubed_precision:.3f} "
            f"R={self.bcubed_recall:.3f} F1={self.bcubed_f1:.3f} | ARI={self.adjusted_rand:.3f}"
        )


def _classes(truth: Mapping[Hashable, Hashable | None]) -> dict[Hashable, Hashable]:
    return {
        item: (label if label is not None else ("_singleton", item))
        for item, label in truth.items()
    }


def score(
    truth: Mapping[Hashable, Hashable | None], predicted: Mapping[Hashable, Hashable]
) -> Scores:
    """Score `predicted` (item -> cluster) against `truth` (item -> class or None) over the
    items both know."""
    items = [item for item in truth if item in predicted]
    gold = _classes({i: truth[i] for i in items})
    pred = {i: predicted[i] for i in items}
    n = len(items)
    if n == 0:
        return Scores(0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0)
    joint = Counter((gold[i], pred[i]) for i in items)
    gold_sizes = Counter(gold.values())
    pred_sizes = Counter(pred.values())
    same_both = sum(comb(c, 2) for c in joint.values())
    same_pred = sum(comb(c, 2) for c in pred_sizes.values())
    same_gold = sum(comb(c, 2) for c in gold_sizes.values())
    pairwise_p = same_both / same_pred if same_pred else 1.0
    pairwise_r = same_both / same_gold if same_gold else 1.0
    b3_p = sum(joint[(gold[i], pred[i])] / pred_sizes[pred[i]] for i in items) / n
    b3_r = sum(joint[(gold[i], pred[i])] / gold_sizes[gold[i]] for i in items) / n
    b3_f = 2 * b3_p * b3_r / (b3_p + b3_r) if b3_p + b3_r else 0.0
    total = comb(n, 2)
    expected = same_pred * same_gold / total if total else 0.0
    maximum = (same_pred + same_gold) / 2
    ari = (same_both - expected) / (maximum - expected) if maximum != expected else 1.0
    return Scores(n, pairwise_p, pairwise_r, b3_p, b3_r, b3_f, ari)
