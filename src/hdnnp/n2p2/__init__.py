"""n2p2/RuNNer interoperability: read their potentials exactly, write ours for LAMMPS.

* :func:`load_n2p2_potential` — an n2p2/RuNNer potential directory (``input.nn``,
  ``scaling.data``, ``weights.ZZZ.data``) as an hdnnp
  :class:`~hdnnp.model.NeuralNetworkPotential` (eV, Å);
  :func:`hdnnp.potential.load_potential` and :class:`hdnnp.Calculator` call it for
  directories.
* :func:`export_n2p2_potential` — an hdnnp model with n2p2-expressible descriptors as
  such a directory (``hdnnp export MODEL OUTDIR --format n2p2``), usable by n2p2's tools
  and LAMMPS ``pair_style hdnnp``.
* Data sets in n2p2's ``input.data`` format: :mod:`hdnnp.io.n2p2_data`.

See ``docs/n2p2.md``.
"""

from __future__ import annotations

from hdnnp.n2p2.potential import (
    export_n2p2_potential,
    format_symfunction,
    load_n2p2_potential,
    n2p2_functions,
)
from hdnnp.n2p2.settings import N2P2Settings, read_input_nn

__all__ = ["N2P2Settings", "export_n2p2_potential", "format_symfunction",
           "load_n2p2_potential", "n2p2_functions", "read_input_nn"]
