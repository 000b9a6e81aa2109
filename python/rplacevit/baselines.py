"""The rules the models are compared with (each ranks colors from what the canvas shows before an
event), and the scores of all predictors: top-k accuracy, negative log-likelihood, ROC-AUC. See
:mod:`rplacevit.evaluate` for what each rule does and how the evaluation uses them."""

from __future__ import annotations

import numpy as np

from .history import RECENT_MS, WINDOW
from .models import PALETTE_SIZE

#: Side of the window the ``recent`` baseline looks at (and the period: ``RECENT_MS``).
RECENT_SIZE = WINDOW
COLOR_BASELINES = ("prior", "current", "previous", "neighbourhood", "recent")
#: The baselines that rank colors event by event (the prior ranks them once for all).
PER_EVENT_BASELINES = COLOR_BASELINES[1:]

__all__ = ["RECENT_MS", "RECENT_SIZE", "COLOR_BASELINES", "PER_EVENT_BASELINES", "top_k", "color_metrics", "roc_auc",
           "prior_ranking", "current_ranking", "previous_ranking", "neighbourhood_ranking", "recent_ranking"]

# --- metrics -------------------------------------------------------------------------------


def top_k(scores: np.ndarray, k: int = 3) -> np.ndarray:
    """(n, k) int64: the k colors of highest score per row, ties to the lower index; −1 where a
    row has fewer than k colors of score above −inf."""
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    ranked = np.take_along_axis(scores, order, axis=1)
    return np.where(ranked > -np.inf, order, -1)


def color_metrics(targets: np.ndarray, ranked: np.ndarray, nll: np.ndarray | None = None) -> dict:
    """top1, top3 (fractions) of (n, 3) rankings against (n,) targets; nll: the mean of the (n,)
    per-event negative log-likelihoods, when given."""
    hits = ranked == targets[:, None]
    metrics = {"top1": float(hits[:, 0].mean()), "top3": float(hits.any(axis=1).mean())}
    if nll is not None:
        metrics["nll"] = float(nll.mean())
    return metrics


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """The probability that a random positive scores above a random negative, ties counted one
    half (the Mann–Whitney U over average ranks); None without positives or negatives."""
    labels, scores = labels.ravel().astype(bool), scores.ravel()
    positives = int(labels.sum())
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return None
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    # Average 1-based rank of each distinct score: the ranks its tied group spans, averaged.
    average_rank = np.cumsum(counts) - (counts - 1) / 2
    rank_sum = average_rank[inverse.ravel()][labels].sum()
    return float((rank_sum - positives * (positives + 1) / 2) / (positives * negatives))


# --- baselines -----------------------------------------------------------------------------


def neighbour_counts(windows3: np.ndarray) -> np.ndarray:
    """(n, 32) int64: how many of the 8 neighbours have each color, from (n, 3, 3) windows
    centred on the events (OUTSIDE never counts)."""
    neighbours = np.delete(windows3.reshape(len(windows3), 9), 4, axis=1)
    return (neighbours[:, :, None] == np.arange(PALETTE_SIZE)).sum(axis=1)


def prior_ranking(prior_counts: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, 3) ranking and (32,) add-one smoothed probabilities of the prior."""
    probabilities = (prior_counts + 1) / (prior_counts.sum() + PALETTE_SIZE)
    ranked = top_k(probabilities[None, :].astype(np.float64))
    return np.repeat(ranked, n, axis=0), probabilities


def current_ranking(windows3: np.ndarray) -> np.ndarray:
    """(n, 3): the pixel's color, then the two most frequent other colors around it; the three
    most frequent around it where the pixel is OUTSIDE (not open yet at the event's time: only
    a file that places there has such events)."""
    centre = windows3[:, 1, 1].astype(np.int64)
    on = centre < PALETTE_SIZE
    counts = neighbour_counts(windows3).astype(np.float64)
    counts[np.flatnonzero(on), centre[on]] = 0
    others = top_k(np.where(counts > 0, counts, -np.inf), 3)
    return np.where(on[:, None], np.concatenate([centre[:, None], others[:, :2]], axis=1), others)


def previous_ranking(windows3: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """(n, 3): the color the pixel showed before its last placement (``previous``, (n,) as
    :meth:`rplacevit.History.previous_colors` gives it: what a damaged pixel is restored to),
    then its present color, then the most frequent colors among its 8 neighbours (ties: lower
    palette index); where the pixel itself is OUTSIDE, the neighbours alone."""
    centre = windows3[:, 1, 1].astype(np.int64)
    on = np.flatnonzero(centre < PALETTE_SIZE)
    scores = neighbour_counts(windows3).astype(np.float64)
    scores[scores == 0] = -np.inf
    scores[on, centre[on]] = 9  # above any count of 8 neighbours
    scores[on, previous[on].astype(np.int64)] = 10
    return top_k(scores)


def neighbourhood_ranking(windows3: np.ndarray) -> np.ndarray:
    """(n, 3): the most frequent colors among the 8 neighbours."""
    counts = neighbour_counts(windows3).astype(np.float64)
    return top_k(np.where(counts > 0, counts, -np.inf))


def recent_ranking(counts: np.ndarray, latest: np.ndarray) -> np.ndarray:
    """(n, 3): the colors placed most often lately, ties to the latest placed (ids < 2³²)."""
    keys = counts.astype(np.float64) * 2.0**32 + latest  # exact: both terms are integers < 2⁵³
    return top_k(np.where(counts > 0, keys, -np.inf))
