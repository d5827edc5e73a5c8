"""Augmentation: scaling, tilt, strain, rattling and the thesis's data sets A and B."""

from __future__ import annotations

import numpy as np
import pytest
from ase.geometry import get_distances

from hdnnp.errors import HdnnpError
from hdnnp.reference_data import augment as aug
from hdnnp.reference_data import structures as st


def _all_distances(atoms):
    return get_distances(atoms.positions, cell=atoms.cell, pbc=atoms.pbc)[1]


def test_scale_bulk_scales_volume_and_distances():
    d = st.diamond()
    d.rattle(0.05, seed=1)
    s = aug.scale(d, 0.07)
    assert s.get_volume() == pytest.approx(d.get_volume() * 1.07**3)
    assert np.allclose(_all_distances(s), 1.07 * _all_distances(d))
    assert s.info["scale_factor"] == 0.07 and s.info["augmentation"] == "scale"


def test_scale_sheet_keeps_cell_height_and_scales_bonds():
    g = st.silica_bilayer((2, 2, 1))          # a buckled sheet: z bonds must scale too
    g.rattle(0.03, seed=2)
    s = aug.scale(g, -0.08)
    assert s.cell[2, 2] == pytest.approx(g.cell[2, 2])
    i, j = np.triu_indices(len(g), 1)
    d0 = _all_distances(g)[i, j]
    d1 = _all_distances(s)[i, j]
    near = d0 < 4.0                            # minimum image differs only across vacuum
    assert np.allclose(d1[near], 0.92 * d0[near])


def test_monoclinic_tilt_conserves_volume_and_area():
    r = st.rutile((1, 1, 1))
    t = aug.monoclinic_tilt(r, 0.06)
    assert t.get_volume() == pytest.approx(r.get_volume(), rel=1e-12)
    assert t.cell.cellpar()[5] != pytest.approx(90.0, abs=1.0)     # really tilted
    assert np.allclose(t.get_scaled_positions(), r.get_scaled_positions())
    g = st.graphene((2, 2, 1))
    tg = aug.monoclinic_tilt(g, 0.1)
    area = lambda a: np.linalg.norm(np.cross(a.cell[0], a.cell[1]))  # noqa: E731
    assert area(tg) == pytest.approx(area(g), rel=1e-12)
    assert tg.cell[2, 2] == pytest.approx(g.cell[2, 2])


def test_uniaxial_strain():
    r = st.anatase()
    u = aug.uniaxial_strain(r, -0.05, axis=2)
    assert u.cell.lengths() == pytest.approx(r.cell.lengths() * [1, 1, 0.95])
    v = aug.uniaxial_strain(r, 0.05, axis=0, conserve_volume=True)
    assert v.get_volume() == pytest.approx(r.get_volume())
    assert v.cell.lengths()[0] == pytest.approx(r.cell.lengths()[0] * 1.05)
    with pytest.raises(HdnnpError):
        aug.uniaxial_strain(st.graphene(), 0.05, axis=2)


def test_rattle_amplitude():
    g = st.graphene((6, 6, 1))
    r = aug.rattle(g, 0.05, seed=0)
    assert np.std(r.positions - g.positions) == pytest.approx(0.05, rel=0.15)


def test_random_and_grid_scalings():
    md = [st.graphene((2, 2, 1)) for _ in range(3)]
    sc = aug.random_scalings(md, k=10, seed=4)
    f = np.array([a.info["scale_factor"] for a in sc])
    assert len(sc) == 30 and f.min() >= -0.1 and f.max() <= 0.1 and len(set(f)) == 30
    assert [a.info["parent_index"] for a in sc[:11]] == [0] * 10 + [1]
    again = aug.random_scalings(md, k=10, seed=4)
    assert [a.info["scale_factor"] for a in again] == list(f)
    grid = aug.grid_scalings(md)
    assert [a.info["scale_factor"] for a in grid[:5]] == list(aug.THESIS_SCALE_GRID)


def test_dataset_a_and_b_recipes():
    md = []
    for k in range(50):
        a = aug.rattle(st.graphene((2, 2, 1)), 0.02, seed=k)
        a.info = {"temperature_K": 300.0 + k, "material": "graphene"}
        md.append(a)
    A = aug.dataset_a(md, 20, seed=1)
    assert len(A) == 20 and all(a.info["dataset"] == "A" for a in A)
    B = aug.dataset_b(md, 40, seed=1)
    kinds = [a.info["augmentation"] for a in B]
    assert kinds.count("scale") == 32 and kinds.count("none") == 8     # 80 % / 20 %
    assert all("temperature_K" in a.info for a in B)                    # MD provenance kept
    scaled_parents = {a.info["md_index"] for a in B if a.info["augmentation"] == "scale"}
    assert len(scaled_parents) > 1
    B2 = aug.dataset_b(md, 40, seed=1)
    assert all(np.array_equal(x.positions, y.positions) for x, y in zip(B, B2))
    with pytest.raises(HdnnpError):
        aug.dataset_b(md[:2], 40)
