"""Selection of candidates: DP-GEN's trust window, then farthest-point de-duplication.

Every scored snapshot falls into one class (Zhang et al., Comput. Phys. Commun. 253,
107206 (2020), the trust levels σ_lo, σ_hi of DP-GEN's model deviation):

* ``accurate``: score < ``lower`` — the committee agrees, nothing to learn;
* ``candidate``: ``lower`` ≤ score ≤ ``upper`` — worth labelling;
* ``failed``: score > ``upper`` (or not finite), or two atoms closer than
  ``min_pair_distance`` (Å) — so far outside the training data that the structure is
  likely unphysical (MD with a bad potential); not labelled.

Among the candidates at most ``max_n`` are chosen by greedy farthest-point sampling
(Gonzalez, Theor. Comput. Sci. 38, 293 (1985)) in fingerprint space
(:mod:`hdnnp.active_learning.score`): the next choice is the candidate whose distance to
the nearest already chosen *or training* structure is largest; a candidate within
``min_distance`` of one of those is a duplicate and is never chosen.  With no training
fingerprints the first choice is the highest-scoring candidate.  Ties go to the lower
index, so the selection is deterministic.
"""

from __future__ import annotations

import numpy as np

ACCURATE, CANDIDATE, FAILED = "accurate", "candidate", "failed"


def classify(scores: np.ndarray, lower: float, upper: float,
             pair_ok: np.ndarray | None = None) -> np.ndarray:
    """Class of each score (array of strings); ``pair_ok`` False marks a snapshot failed
    whatever its score (atoms too close)."""
    s = np.asarray(scores, dtype=float)
    out = np.full(s.shape, FAILED, dtype=object)
    ok = np.isfinite(s)
    if pair_ok is not None:
        ok &= np.asarray(pair_ok, dtype=bool)
    out[ok & (s < lower)] = ACCURATE
    out[ok & (s >= lower) & (s <= upper)] = CANDIDATE
    return out


def farthest_point(fingerprints: np.ndarray, candidates: np.ndarray, max_n: int,
                   reference: np.ndarray | None = None, min_distance: float = 0.0,
                   first_by: np.ndarray | None = None) -> list[int]:
    """Greedy farthest-point choice of at most ``max_n`` of ``candidates`` (indices into
    ``fingerprints``) away from each other and from ``reference`` fingerprints."""
    candidates = [int(c) for c in candidates if np.all(np.isfinite(fingerprints[c]))]
    if not candidates or max_n <= 0:
        return []
    X = fingerprints[candidates]
    dmin = np.full(len(candidates), np.inf)
    if reference is not None and len(reference):
        R = np.asarray(reference)
        R = R[np.all(np.isfinite(R), axis=1)]
        for start in range(0, len(R), 256):
            d = np.linalg.norm(X[:, None, :] - R[None, start:start + 256, :], axis=-1)
            dmin = np.minimum(dmin, d.min(1))
    chosen: list[int] = []
    while len(chosen) < max_n:
        if np.isinf(dmin).all():
            order = np.asarray(first_by)[candidates] if first_by is not None else \
                np.zeros(len(candidates))
            j = int(np.argmax(order))
        else:
            j = int(np.argmax(dmin))
        if dmin[j] <= min_distance or dmin[j] == -1.0:
            break
        chosen.append(candidates[j])
        dmin = np.minimum(dmin, np.linalg.norm(X - X[j], axis=1))
        dmin[j] = -1.0
    return chosen


def select(scores: np.ndarray, fingerprints: np.ndarray, settings,
           training_fingerprints: np.ndarray | None = None, max_n: int | None = None,
           min_pair: np.ndarray | None = None) -> tuple[np.ndarray, list[int]]:
    """Classes of all snapshots and the indices chosen for labelling (``min_pair``: each
    snapshot's shortest interatomic distance, Å)."""
    classes = classify(scores, settings.lower, settings.upper,
                       None if min_pair is None else
                       np.asarray(min_pair) >= settings.min_pair_distance)
    cand = np.flatnonzero(classes == CANDIDATE)
    n = settings.max_per_iteration if max_n is None else min(max_n, settings.max_per_iteration)
    chosen = farthest_point(fingerprints, cand, n, training_fingerprints,
                            settings.min_distance, first_by=np.asarray(scores, dtype=float))
    return classes, chosen
