"""Reference data: the stage before training (thesis §3.1, §6.1).

Build structures → sample them by NVT molecular dynamics (with a classical force field,
the reference itself or a trained potential) → augment by scaling → label them with the
reference method (tblite GFN1-xTB by default) in resumable labelling databases, which
:mod:`hdnnp.data` then loads as a training set.

Modules (one concept each):

===============  ==============================================================
``structures``   builders for the thesis materials
``sampling``     NVT MD sampling of reference structures
``forcefields``  classical force fields (LAMMPS) used as cheap samplers
``augment``      scaling, strain, rattling
``calculators``  reference calculators (tblite GFN1-xTB default), isolated-atom
                 energies
``labelling``    resumable labelling jobs into ASE databases
===============  ==============================================================

Importing :mod:`hdnnp.reference_data` is cheap: it imports none of its modules;
import them by name (``from hdnnp.reference_data import structures``).
"""
