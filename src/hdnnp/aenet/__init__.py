"""ænet interoperability: its structure files (XSF) and its potentials (``*.nn``).

* :mod:`hdnnp.aenet.xsf` — ænet's structure format (XCrySDen XSF with the total energy
  in a comment line and forces beside the coordinates), read by :mod:`hdnnp.io`.
* :func:`load_aenet_potential` — an ænet potential (one ``*.nn`` file per species, the
  Fortran binary that ``train.x`` writes or the ``.nn.ascii`` text form of aenet-PyTorch)
  as an hdnnp :class:`~hdnnp.model.NeuralNetworkPotential`;
  :func:`hdnnp.potential.load_potential`, :class:`hdnnp.Calculator` and ``hdnnp predict``
  call it for such files and directories (:mod:`hdnnp.aenet.potential`).
* :func:`export_aenet_potential` — an hdnnp model with ænet-expressible descriptors
  (Chebyshev, Behler G1–G5) as ``*.nn`` files for ænet's ``predict.x``
  (``hdnnp export MODEL OUTDIR --format aenet``).
* :func:`read_nn` / :func:`write_nn` — the file format itself (:mod:`hdnnp.aenet.nnfile`).

The potential-level names are loaded on first use (PEP 562): :mod:`hdnnp.io` imports
:mod:`hdnnp.aenet.xsf` without loading torch.  See ``docs/aenet.md``.
"""

from __future__ import annotations

_EXPORTS = {"load_aenet_potential": "potential", "export_aenet_potential": "potential",
            "model_to_aenet": "potential", "is_aenet_path": "potential",
            "predict_in": "potential", "read_nn": "nnfile", "write_nn": "nnfile",
            "NNFile": "nnfile"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'hdnnp.aenet' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"hdnnp.aenet.{_EXPORTS[name]}"), name)
