"""Atomic-environment descriptors on one engine (:mod:`hdnnp.descriptors.engine`): the
symmetry-function family (Behler G1–G5 and the n2p2 types, :mod:`~.symmetry`) and ænet's
Chebyshev descriptor (:mod:`~.chebyshev`)."""

from __future__ import annotations

from hdnnp.descriptors.chebyshev import Chebyshev
from hdnnp.descriptors.cutoffs import CutoffFunction
from hdnnp.descriptors.engine import Descriptor, PairJacobian
from hdnnp.descriptors.symmetry import SymmetryFunctions, default_behler_functions
from hdnnp.errors import HdnnpError

#: Behler's and n2p2's functions are one family: both names are the same class.
BehlerParrinello = SymmetryFunctions
N2P2SymmetryFunctions = SymmetryFunctions

#: Descriptor classes by the ``kind`` stored in potential files ("behler" and "n2p2" are
#: the kinds of files written before the two were one family).
DESCRIPTOR_KINDS: dict[str, type[Descriptor]] = {
    SymmetryFunctions.kind: SymmetryFunctions,
    "behler": SymmetryFunctions,
    "n2p2": SymmetryFunctions,
    Chebyshev.kind: Chebyshev,
}


def register_descriptor(cls: type[Descriptor]) -> type[Descriptor]:
    """Make a descriptor class loadable from potential files (class decorator)."""
    DESCRIPTOR_KINDS[cls.kind] = cls
    return cls


def descriptor_from_config(cfg: dict) -> Descriptor:
    """Rebuild a descriptor from its :meth:`Descriptor.to_config` dictionary."""
    kind = cfg.get("kind")
    if kind not in DESCRIPTOR_KINDS:
        raise HdnnpError(f"unknown descriptor kind {kind!r} (known: {', '.join(DESCRIPTOR_KINDS)})")
    return DESCRIPTOR_KINDS[kind].from_config(cfg)


def default_descriptor(kind: str, elements, cutoff: float, size: int = 8) -> Descriptor:
    """A reasonable descriptor from only a cutoff (Å) and a size.

    ``chebyshev``: radial order ``2*size`` to ``cutoff`` and angular order ``size//2``
    to ``min(cutoff, 0.8*cutoff)`` (ænet's TiO2 setup is 16/8.0 Å and 4/6.5 Å for
    ``size=8``, ``cutoff=8``).  ``behler``: ``size`` G2 per element pair and
    ``max(2, size//2)`` G5 per element triple (see :func:`default_behler_functions`).
    """
    elements = list(elements)
    if kind == "chebyshev":
        return Chebyshev(elements, radial_rc=cutoff, radial_order=2 * size,
                         angular_rc=round(0.8125 * cutoff, 4), angular_order=max(1, size // 2))
    if kind == "behler":
        return SymmetryFunctions(elements, default_behler_functions(
            elements, cutoff, n_radial=size, n_angular=max(2, size // 2)))
    raise HdnnpError(f"no default for descriptor kind {kind!r} (use chebyshev or behler)")


__all__ = [
    "DESCRIPTOR_KINDS",
    "BehlerParrinello",
    "Chebyshev",
    "CutoffFunction",
    "Descriptor",
    "N2P2SymmetryFunctions",
    "PairJacobian",
    "SymmetryFunctions",
    "default_behler_functions",
    "default_descriptor",
    "descriptor_from_config",
    "register_descriptor",
]
