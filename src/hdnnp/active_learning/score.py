r"""Scores of snapshots from the committee, and descriptor fingerprints for de-duplication.

For a committee of :math:`K` members with forces :math:`\mathbf F_{ik}` on atom
:math:`i` and energies :math:`E_k`:

* ``max_force_dev`` (eV/Å): :math:`\max_i [K^{-1}\sum_k |\mathbf F_{ik} - \bar{\mathbf
  F}_i|^2]^{1/2}`, DeePMD-kit's / DP-GEN's model deviation of the forces (Zhang et al.,
  Phys. Rev. Materials 3, 023804 (2019), eq. 2), the usual active-learning criterion;
* ``energy_spread_per_atom`` (eV/atom): :math:`\sigma_E / N` with :math:`\sigma_E` the
  members' standard deviation of the total energy (query by committee: Schran, Brezina,
  Marsalek, J. Chem. Phys. 153, 104105 (2020));
* ``extrapolation_count``: number of descriptor values outside the range seen in
  training (n2p2's extrapolation warnings; thesis §6.2),
  :meth:`hdnnp.model.NeuralNetworkPotential.extrapolation_mask`.

The same quantities as :class:`hdnnp.Calculator` reports (``max_force_deviation``,
``energy_std``, ``extrapolation_warnings``), computed here in one pass that also returns
each structure's *fingerprint*: the mean over the atoms of each element of the
descriptor scaled to the training range, :math:`(G - G_\min)/(G_\max - G_\min)`,
concatenated over the elements (a structure-level descriptor for farthest-point
selection).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from ase import Atoms

from hdnnp.errors import HdnnpError

SCORE_KEYS = ("max_force_dev", "energy_spread_per_atom", "extrapolation_count")


def min_pair_distance(atoms: Atoms) -> float:
    """Shortest interatomic distance (Å, minimum image), ``inf`` for a single atom."""
    if len(atoms) < 2:
        return float("inf")
    d = atoms.get_all_distances(mic=bool(np.any(atoms.pbc)))
    np.fill_diagonal(d, np.inf)
    return float(d.min())


def _fingerprint(model, features: torch.Tensor, species: torch.Tensor) -> np.ndarray:
    parts = []
    for k, e in enumerate(model.elements):
        net = model.networks[e]
        n = net.n_inputs
        lo = net.feature_min.to(features.dtype)
        hi = net.feature_max.to(features.dtype)
        idx = torch.nonzero(species == k).squeeze(1)
        if idx.numel() == 0:
            parts.append(np.zeros(n))
            continue
        g = (features[idx, :n] - lo) / (hi - lo).abs().clamp_min(1e-12)
        parts.append(g.mean(0).cpu().double().numpy())
    return np.concatenate(parts) if parts else np.zeros(0)


def score_structures(model, structures: list[Atoms], progress: bool = False,
                     desc: str = "scoring") -> tuple[list[dict], np.ndarray]:
    """Scores (dicts of :data:`SCORE_KEYS`, plus ``committee_energy_per_atom`` in eV/atom)
    and fingerprints ``[n, F]`` of ``structures``.  A structure the potential cannot
    evaluate (too-close atoms, non-finite output) scores ``inf``."""
    from hdnnp.model import committee_force_deviation
    from hdnnp.neighbours import build_batch
    from hdnnp.potential import load_potential

    if not hasattr(model, "elements"):
        model = load_potential(model)
    model = model.eval()
    if model.committee_size < 2:
        raise HdnnpError("scoring needs a committee potential (≥ 2 members)")
    dtype = next(model.parameters()).dtype
    width = sum(model.networks[e].n_inputs for e in model.elements)
    scores, prints = [], []
    it = structures
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(structures, unit="structure", desc=desc, leave=False)
    for atoms in it:
        n = len(atoms)
        try:
            batch = build_batch([atoms], model.elements, model.cutoff, dtype=dtype)
            out = model(batch, forces=True, member_forces=True)
            dev = committee_force_deviation(out["forces_members"])
            e = float(out["energy"][0])
            s = {"max_force_dev": float(dev.max()) if dev.numel() else 0.0,
                 "energy_spread_per_atom": float(out["energy_std"][0]) / max(n, 1),
                 "extrapolation_count": int(model.extrapolation_mask(
                     out["features"].detach(), batch.species).sum()),
                 "committee_energy_per_atom": e / max(n, 1)}
            if not all(math.isfinite(v) for v in s.values()):
                raise HdnnpError("non-finite committee output")
            fp = _fingerprint(model, out["features"].detach(), batch.species)
        except HdnnpError:
            s = {"max_force_dev": math.inf, "energy_spread_per_atom": math.inf,
                 "extrapolation_count": -1, "committee_energy_per_atom": math.nan}
            fp = np.full(width, np.nan)
        scores.append(s)
        prints.append(fp)
    return scores, np.array(prints).reshape(len(structures), width)
