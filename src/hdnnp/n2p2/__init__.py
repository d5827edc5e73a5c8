"""n2p2/RuNNer interoperability: read their potentials exactly, write ours for LAMMPS.

* :func:`load_n2p2_potential` — an n2p2/RuNNer potential directory (``input.nn``,
  ``scaling.data``, ``weights.ZZZ.data``) as an hdnnp
  :class:`~hdnnp.model.NeuralNetworkPotential` (eV, Å);
  :func:`hdnnp.potential.load_potential` and :class:`hdnnp.Calculator` call it for
  directories.
* :func:`export_n2p2_potential` — an hdnnp model with n2p2-expressible descriptors as
  such a directory (``hdnnp export MODEL OUTDIR --format n2p2``), usable by n2p2's tools
  and LAMMPS ``pair_style hdnnp``.
* Data sets in n2p2's ``input.data`` format: :mod:`hdnnp.n2p2.data` (read by
  :mod:`hdnnp.io`).

The potential-level names are loaded on first use (PEP 562), so that the structure
readers can import :mod:`hdnnp.n2p2.data` without loading the model code.

See ``docs/n2p2.md``.
"""

from __future__ import annotations

_EXPORTS = {"export_n2p2_potential": "potential", "format_symfunction": "potential",
            "load_n2p2_potential": "potential", "n2p2_functions": "potential",
            "N2P2Settings": "settings", "read_input_nn": "settings"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'hdnnp.n2p2' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"hdnnp.n2p2.{_EXPORTS[name]}"), name)
