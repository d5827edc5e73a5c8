"""Active learning: explore with the committee, score, select, label, retrain (``hdnnp learn``).

The loop of thesis §6.1–6.2 (iterative refinement: find where the potential
extrapolates, add those structures, retrain) in the form of DP-GEN (Zhang et al.,
Comput. Phys. Commun. 253, 107206 (2020)): every iteration

1. trains a committee on all labels so far (members warm-started from the previous
   iteration's members), :mod:`hdnnp.active_learning.loop`;
2. explores with it: NVT MD at a list of temperatures from seed structures scaled by a
   list of factors, :mod:`~hdnnp.active_learning.explore`;
3. scores every snapshot with the committee (maximum per-atom force deviation, energy
   spread per atom, n2p2 extrapolation count), :mod:`~hdnnp.active_learning.score`;
4. selects candidates whose score lies inside the trust window [lower, upper],
   de-duplicated by descriptor distance (farthest-point), at most N,
   :mod:`~hdnnp.active_learning.select`;
5. labels them with the reference (:func:`hdnnp.reference_data.labelling.label`).

It stops when ≥ ``stop.accurate_fraction`` of the explored snapshots score below the
lower trust level, when the label budget is spent, or after ``stop.max_iterations``.
"""

from hdnnp.active_learning.config import LearnConfig, load_learn_config
from hdnnp.active_learning.loop import learn

__all__ = ["LearnConfig", "learn", "load_learn_config"]
