"""Predictions of a potential on a list of structures, with metrics against references.

Structures are evaluated in batches of about ``batch_atoms`` atoms with the model's
full autograd path (descriptors → networks → forces/stress), in the model's dtype.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from ase import Atoms

from hdnnp.data import structure_energy, structure_forces
from hdnnp.errors import HdnnpError
from hdnnp.model import NeuralNetworkPotential
from hdnnp.neighbours import build_batch


def _batches(structures: Sequence[Atoms], batch_atoms: int):
    cur, n = [], 0
    for k, a in enumerate(structures):
        cur.append(k)
        n += len(a)
        if n >= batch_atoms:
            yield cur
            cur, n = [], 0
    if cur:
        yield cur


def predict_structures(model: NeuralNetworkPotential, structures: Sequence[Atoms],
                       forces: bool = True, stress: bool = False, batch_atoms: int = 2000,
                       progress: bool = False) -> dict[str, np.ndarray]:
    """Energies (eV), forces (eV/Å, concatenated over atoms), per-atom energies and
    extrapolation counts of ``structures``; with ``stress`` also [S, 3, 3] stress (eV/Å³);
    for a committee potential also ``energy_std`` (eV, the members' spread).

    Reference energies/forces attached to the structures are returned as
    ``energy_ref``/``forces_ref`` (NaN where missing).  A structure without neighbour
    pairs gets the sum of its isolated-atom reference energies and zero forces (as
    :class:`hdnnp.Calculator`); a non-finite prediction raises :class:`HdnnpError`
    naming the structure.
    """
    param = next(model.parameters())
    dtype, device = param.dtype, param.device
    n = len(structures)
    energy = np.zeros(n)
    n_atoms = np.array([len(a) for a in structures], dtype=np.int64)
    extrap = np.zeros(n, dtype=np.int64)
    energy_std = np.zeros(n) if model.committee_size > 1 else None
    f_out, ea_out, s_out = [], [], []
    chunks = list(_batches(structures, batch_atoms))
    if progress:
        from tqdm.auto import tqdm

        chunks = tqdm(chunks, desc="predicting", unit="batch", leave=False)
    for chunk in chunks:
        batch = build_batch([structures[k] for k in chunk], model.elements, model.cutoff,
                            dtype=dtype, device=device,
                            names=[str(structures[k].info.get("source", k)) for k in chunk])
        out = model(batch, forces=forces, stress=stress)
        e = out["energy"].detach().cpu().double().numpy()
        ea = out["energies"].detach().cpu().double().numpy()
        f = out["forces"].detach().cpu().double().numpy() if forces else None
        atom_struct = batch.structure_index.cpu().numpy()
        bad = ~np.isfinite(e)
        if f is not None:
            bad |= np.bincount(atom_struct, ~np.isfinite(f).all(1), len(chunk)) > 0
        if bad.any():
            k = chunk[int(np.flatnonzero(bad)[0])]
            raise HdnnpError(f"{structures[k].info.get('source', f'structure {k}')}: the "
                             "potential gives a non-finite energy or forces; is the potential "
                             "file damaged?")
        # a structure without neighbour pairs is a set of isolated atoms: the sum of their
        # reference energies, no forces (as hdnnp.Calculator gives it)
        no_pairs = np.bincount(atom_struct[batch.centers.cpu().numpy()],
                               minlength=len(chunk)) == 0
        if no_pairs.any():
            lonely = no_pairs[atom_struct]
            ea[lonely] = model.reference_energies.detach().cpu().double().numpy()[
                batch.species.cpu().numpy()[lonely]]
            e[no_pairs] = np.bincount(atom_struct[lonely], ea[lonely], len(chunk))[no_pairs]
            if f is not None:
                f[lonely] = 0.0
        energy[chunk] = e
        if energy_std is not None:
            energy_std[chunk] = np.where(no_pairs, 0.0, out["energy_std"].cpu().numpy())
        ea_out.append(ea)
        if f is not None:
            f_out.append(f)
        if stress:
            st = out["stress"].detach().cpu().double().numpy()
            st[no_pairs] = 0.0
            s_out.append(st)
        mask = model.extrapolation_mask(out["features"].detach(), batch.species)
        per_struct = torch.zeros(len(chunk), dtype=torch.long, device=mask.device).index_add(
            0, batch.structure_index, mask.sum(1))
        extrap[chunk] = per_struct.cpu().numpy()
    result = {
        "energy": energy,
        "n_atoms": n_atoms,
        "energies": np.concatenate(ea_out) if ea_out else np.zeros(0),
        "extrapolation_warnings": extrap,
        "energy_ref": np.array([np.nan if structure_energy(a) is None else structure_energy(a)
                                for a in structures]),
    }
    if energy_std is not None:
        result["energy_std"] = energy_std
    if forces:
        result["forces"] = np.concatenate(f_out) if f_out else np.zeros((0, 3))
        refs = [structure_forces(a) for a in structures]
        result["forces_ref"] = (np.concatenate([r if r is not None else np.full((len(a), 3), np.nan)
                                                for r, a in zip(refs, structures)])
                                if structures else np.zeros((0, 3)))
    if stress:
        result["stress"] = np.concatenate(s_out) if s_out else np.zeros((0, 3, 3))
    return result


def prediction_metrics(pred: dict[str, np.ndarray]) -> dict[str, float]:
    """Energy-per-atom (meV/atom) and force-component (eV/Å) errors and Pearson r against
    the references present (:mod:`hdnnp.analysis.metrics`, the project's one metric
    implementation)."""
    from hdnnp.analysis.metrics import energy_metrics, force_metrics

    out: dict[str, float] = {}
    e_ok = ~np.isnan(pred["energy_ref"])
    if e_ok.any():
        m = energy_metrics(pred["energy_ref"][e_ok], pred["energy"][e_ok],
                           pred["n_atoms"][e_ok])
        out.update({k: m[k] for k in ("energy_mae_meV_per_atom", "energy_rmse_meV_per_atom",
                                      "energy_max_abs_meV_per_atom", "energy_pearson_r")})
        out["n_energy"] = int(e_ok.sum())
    if "forces" in pred:
        ok = ~np.isnan(pred["forces_ref"]).any(1)
        if ok.any():
            m = force_metrics(pred["forces_ref"][ok], pred["forces"][ok])
            out.update({k: m[k] for k in ("force_mae_eV_per_A", "force_rmse_eV_per_A",
                                          "force_max_abs_eV_per_A", "force_pearson_r")})
            out["n_force_atoms"] = int(ok.sum())
    return out
