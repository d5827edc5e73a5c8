"""One-body reduced density matrices (1-RDMs) of exactly solvable 1D two-electron systems.

The second seed system of the project (Wetherell, Costamagna, Gatti, Reining, Faraday
Discuss. 224, 265 (2020), arXiv:2005.10672), in atomic units (Hartree, bohr):

- :mod:`hdnnp.rdm.solver`: exact singlet ground state on a grid (n, γ, natural orbitals,
  energies); :mod:`hdnnp.rdm.hartree_fock`: unrestricted Hartree–Fock on the same grid;
- :mod:`hdnnp.rdm.potentials`: the paper's random potential family;
- :mod:`hdnnp.rdm.generate`: resumable, parallel data-set generation into one HDF5 file;
- :mod:`hdnnp.rdm.pca`: explained variance and components to float precision;
- :mod:`hdnnp.rdm.models`, :mod:`hdnnp.rdm.train`: autoencoders and γ[n] functionals;
- :mod:`hdnnp.rdm.report`: figures and a self-contained HTML report.

See ``docs/rdm.md``.
"""
