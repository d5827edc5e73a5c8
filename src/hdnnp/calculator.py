"""ASE calculator for hdnnp potentials (and n2p2/RuNNer and ænet potentials).

Follows ASE's calculator protocol: ``implemented_properties`` lists what it computes
and results land in ``self.results``: ``energy`` and ``free_energy`` (eV), ``forces``
(eV/Å), ``stress`` (eV/Å³, Voigt order xx yy zz yz xz xy, 3D-periodic cells only),
``energies`` (per-atom, eV).  Extra results: ``extrapolation_warnings`` (number of
descriptor values outside the range of the training data, n2p2's definition) and
``extrapolating_atoms``; for a committee potential also ``energy_std`` (eV, the
members' spread of the total energy) and ``energies_std`` (eV, per atom), and with
``committee_forces=True`` ``forces_deviation`` (eV/Å, per atom: the members' root-mean-
square deviation from the mean force, :math:`[K^{-1}\\sum_k |\\mathbf F_{ik} -
\\bar{\\mathbf F}_i|^2]^{1/2}`, DeePMD-kit's "model deviation") and its maximum
``max_force_deviation``, the usual active-learning criterion.

Example::

    >>> from ase.build import bulk                          # doctest: +SKIP
    >>> import hdnnp
    >>> atoms = bulk("C", "diamond", a=3.57)
    >>> atoms.calc = hdnnp.Calculator("model.json")
    >>> atoms.get_potential_energy(), atoms.get_forces()
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from ase.calculators.calculator import Calculator as _AseCalculator
from ase.calculators.calculator import PropertyNotImplementedError, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from hdnnp.errors import HdnnpError
from hdnnp.model import NeuralNetworkPotential, committee_force_deviation
from hdnnp.neighbours import build_batch


class ExtrapolationWarning(UserWarning):
    """A structure has descriptor values outside the range seen in training."""


class Calculator(_AseCalculator):
    """hdnnp potential as an ASE calculator.

    Every structure is checked before evaluation: positions and cell finite and sane
    (:func:`hdnnp.validation.check_geometry`), no two atoms closer than
    ``hdnnp.validation.MIN_DISTANCE``; and the energy and forces that come out must be
    finite.  A structure without neighbour pairs gets the sum of the isolated-atom
    reference energies and zero forces and stress.

    Parameters
    ----------
    model:
        Path of an hdnnp potential file, an n2p2 potential directory or an ænet potential
        (a directory of ``*.nn`` files, or a mapping species → ``*.nn`` file such as
        ``{"Ti": "Ti.nn", "O": "O.nn"}``), or a
        :class:`~hdnnp.model.NeuralNetworkPotential`.
    device:
        ``"cpu"``, ``"cuda"`` … (default: CUDA when available, else CPU).
    dtype:
        ``"float64"`` (default) or ``"float32"`` for faster inference.
    extrapolation:
        ``"warn"`` (default: a Python warning per call that extrapolates), ``"ignore"``
        (count only) or ``"error"`` (raise :class:`~hdnnp.errors.HdnnpError`).
    committee_forces:
        For committee potentials: also compute every member's forces and their
        deviation (one extra backward pass per member).
    """

    implemented_properties = ("energy", "free_energy", "forces", "stress", "energies")

    def __init__(self, model: str | Path | Mapping | NeuralNetworkPotential,
                 device: str | None = None, dtype: str | torch.dtype = "float64",
                 extrapolation: str = "warn", committee_forces: bool = False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(model, Mapping):  # ænet: {"Ti": "Ti.nn", "O": "O.nn"}
            from hdnnp.aenet.potential import load_aenet_potential

            model = load_aenet_potential(model)
        elif not isinstance(model, NeuralNetworkPotential):
            from hdnnp.potential import load_potential

            model = load_potential(model)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        if extrapolation not in ("warn", "ignore", "error"):
            raise HdnnpError("extrapolation must be 'warn', 'ignore' or 'error'")
        self.extrapolation = extrapolation
        self.committee_forces = committee_forces
        self.model = model.to(device=self.device, dtype=self.dtype).eval()
        #: Calls that extrapolated, and total extrapolated descriptor values, since creation.
        self.extrapolation_calls = 0
        self.extrapolation_total = 0
        self.calls = 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        want_stress = "stress" in properties
        if want_stress and not np.asarray(atoms.pbc).all():
            raise PropertyNotImplementedError("stress needs a cell periodic in all directions")
        source = str(atoms.info.get("source", "the structure given to the calculator"))
        # build_batch refuses non-finite or absurd positions, cells and cutoffs
        # (hdnnp.validation.check_geometry) before the neighbour list sees them
        batch = build_batch([atoms], self.model.elements, self.model.cutoff, dtype=self.dtype,
                            device=self.device, names=[source])
        if batch.centers.numel() == 0:
            self._isolated_atoms(batch, want_stress)
            return
        out = self.model(batch, forces=True, stress=want_stress,
                         member_forces=self.committee_forces)
        self.calls += 1
        energy = float(out["energy"][0].detach())
        forces = out["forces"].detach()
        if not math.isfinite(energy) or not bool(torch.isfinite(forces).all()):
            raise HdnnpError(f"{source}: the potential gives a non-finite energy or forces "
                             f"(energy {energy}); is the potential file damaged?")
        self.results["energy"] = energy
        self.results["free_energy"] = energy
        self.results["forces"] = out["forces"].detach().cpu().double().numpy()
        self.results["energies"] = out["energies"].detach().cpu().double().numpy()
        if "energy_std" in out:
            self.results["energy_std"] = float(out["energy_std"][0])
            self.results["energies_std"] = out["energies_std"].cpu().numpy()
        if "forces_members" in out:
            dev = committee_force_deviation(out["forces_members"]).cpu().numpy()
            self.results["forces_deviation"] = dev
            self.results["max_force_deviation"] = float(dev.max()) if dev.size else 0.0
        if want_stress:
            s = out["stress"][0].detach().cpu().double().numpy()
            self.results["stress"] = full_3x3_to_voigt_6_stress(s)
        mask = self.model.extrapolation_mask(out["features"].detach(), batch.species)
        n_values = int(mask.sum())
        self.results["extrapolation_warnings"] = n_values
        self.results["extrapolating_atoms"] = np.flatnonzero(mask.any(1).cpu().numpy())
        if n_values:
            self.extrapolation_calls += 1
            self.extrapolation_total += n_values
            msg = (f"{n_values} descriptor values of {len(self.results['extrapolating_atoms'])} "
                   "atoms lie outside the range of the training data: the potential "
                   "extrapolates")
            if self.extrapolation == "error":
                raise HdnnpError(msg)
            if self.extrapolation == "warn":
                warnings.warn(msg, ExtrapolationWarning, stacklevel=2)

    def _isolated_atoms(self, batch, want_stress: bool) -> None:
        """Results for a structure without neighbour pairs (an empty ``Atoms()``, one atom,
        atoms farther apart than the cutoff): every atom has its isolated-atom reference
        energy and no force; the descriptors (all zero) and networks are not evaluated.

        Note that the networks' energy of an atom with all-zero descriptors is in general
        not zero, so the energy of an atom whose last neighbour leaves the cutoff jumps
        by that amount when the structure's last pair disappears.
        """
        n = batch.n_total_atoms
        ref = self.model.reference_energies.detach().to(torch.float64).cpu()
        energies = ref[batch.species.cpu()].numpy()
        energy = float(energies.sum())
        self.calls += 1
        self.results.update(energy=energy, free_energy=energy, energies=energies,
                            forces=np.zeros((n, 3)), extrapolation_warnings=0,
                            extrapolating_atoms=np.zeros(0, dtype=np.int64))
        if self.model.committee_size > 1:
            self.results.update(energy_std=0.0, energies_std=np.zeros(n))
            if self.committee_forces:
                self.results.update(forces_deviation=np.zeros(n), max_force_deviation=0.0)
        if want_stress:
            self.results["stress"] = np.zeros(6)

    def extrapolation_summary(self) -> str:
        """One line: how many calls extrapolated so far."""
        return (f"extrapolation: {self.extrapolation_calls} of {self.calls} calls had descriptor "
                f"values outside the training range ({self.extrapolation_total} values in all)")
