"""hdnnp: high-dimensional neural network potentials (Behler–Parrinello) for materials."""

from __future__ import annotations

from hdnnp._version import __version__

__all__ = ["Calculator", "__version__", "load_potential"]


def __getattr__(name):
    # Lazy imports keep ``import hdnnp`` (and the command line's start-up) light.
    if name == "Calculator":
        from hdnnp.calculator import Calculator

        return Calculator
    if name == "load_potential":
        from hdnnp.potential import load_potential

        return load_potential
    raise AttributeError(f"module 'hdnnp' has no attribute {name!r}")
