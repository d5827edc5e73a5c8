"""The n2p2 symmetry functions: the same family as Behler's (:mod:`hdnnp.descriptors.symmetry`).

Kept so that ``from hdnnp.descriptors.n2p2 import N2P2SymmetryFunctions`` goes on working;
the n2p2 file formats themselves belong to :mod:`hdnnp.n2p2`.
"""

from __future__ import annotations

from hdnnp.descriptors.symmetry import SymmetryFunctions as N2P2SymmetryFunctions

__all__ = ["N2P2SymmetryFunctions"]
