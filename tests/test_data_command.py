"""``hdnnp data`` and the bundled data sets."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from ase.calculators.singlepoint import SinglePointCalculator

from hdnnp.bundled import bundled_metadata, list_bundled_datasets, load_bundled_dataset
from hdnnp.cli import main
from hdnnp.errors import HdnnpError
from hdnnp.reference_data import structures as st


@pytest.fixture
def labelled_file(tmp_path):
    """Six labelled H2 structures with known energies (E = −28 + 10 (r − 0.75)² eV)."""
    from hdnnp.io import write_structures

    frames = []
    for k, r in enumerate(np.linspace(0.65, 0.9, 6)):
        a = st.h2(r)
        a.pbc = True
        e = -28.0 + 10.0 * (r - 0.75) ** 2
        a.calc = SinglePointCalculator(a, energy=e, forces=np.zeros((2, 3)))
        a.info["temperature_K"] = 300.0 if k % 2 == 0 else 1000.0
        frames.append(a)
    path = tmp_path / "h2.extxyz"
    write_structures(path, frames)
    return path


def test_bundled_graphene_sets_exist_and_load():
    names = list_bundled_datasets()
    assert {"graphene-A", "graphene-B"} <= set(names)
    for name in ("graphene-A", "graphene-B"):
        meta = bundled_metadata(name)
        ds = load_bundled_dataset(name)
        assert len(ds) == meta["structures"] >= 400
        assert ds.reference_energies == meta["reference_energies"]
        assert set(ds.reference_energies) == {"C"}
        assert meta["method"] == "GFN1-xTB" and meta["commands"]
        assert ds.has_forces.all() and ds[0].get_forces().shape == (72, 3)
        e = ds.cohesive_energies()
        assert e.min() == pytest.approx(meta["energy_per_atom"]["min"])
        assert e.max() == pytest.approx(meta["energy_per_atom"]["max"])
    a, b = load_bundled_dataset("graphene-A"), load_bundled_dataset("graphene-B")
    # data set B reaches much higher energies (scaled ±10 %) than MD-only data set A
    assert np.ptp(b.cohesive_energies()) > 3 * np.ptp(a.cohesive_energies())
    kinds = [s.info["augmentation"] for s in b]
    assert kinds.count("scale") == round(0.8 * len(b))
    temps = {s.info["temperature_K"] for s in a}
    assert temps == {300.0, 500.0, 750.0, 1000.0}
    with pytest.raises(HdnnpError, match="no bundled data set"):
        load_bundled_dataset("unobtainium-Z")


def test_bundled_bulk_set():
    """One bulk material ships too: diamond, 64-atom cells, MD only."""
    assert "diamond-A" in list_bundled_datasets()
    ds = load_bundled_dataset("diamond-A")
    meta = bundled_metadata("diamond-A")
    assert len(ds) == meta["structures"] >= 300 and set(ds.elements) == {"C"}
    assert ds[0].get_forces().shape == (64, 3) and ds[0].pbc.all()
    assert {s.info["temperature_K"] for s in ds} == {300.0, 500.0, 750.0, 1000.0}
    # isolated-atom energies come with each set's own settings (graphene: 3000 K smearing)
    assert ds.reference_energies == meta["reference_energies"]
    assert meta["reference_settings"]["electronic_temperature"] == 300.0
    assert bundled_metadata("graphene-A")["reference_settings"]["electronic_temperature"] \
        == 3000.0
    e = ds.cohesive_energies()
    assert e.max() - e.min() < 0.3 and np.isfinite(e).all()


def test_data_list_and_summary(labelled_file, tmp_path, capsys):
    assert main(["data", "list"]) == 0
    assert "graphene-A" in capsys.readouterr().out
    png = tmp_path / "hist.png"
    assert main(["data", "summary", str(labelled_file), "--json", "--plot", str(png)]) == 0
    out = json.loads(capsys.readouterr().out)
    s = out[str(labelled_file)]
    assert s["structures"] == 6 and s["atoms"] == 12
    assert s["energy_per_atom"]["min"] == pytest.approx(-14.0)           # r = 0.75 Å
    assert s["energy_per_atom"]["max"] == pytest.approx((-28 + 10 * 0.15**2) / 2)
    assert png.stat().st_size > 1000


def test_data_export_merge_select_split(labelled_file, tmp_path, capsys):
    from hdnnp.io import read_structures

    xz = tmp_path / "h2.extxyz.xz"
    assert main(["data", "export", str(labelled_file), "-o", str(xz)]) == 0
    back = read_structures(xz)
    assert len(back) == 6 and back[2].get_potential_energy() == pytest.approx(
        read_structures(labelled_file)[2].get_potential_energy())
    xsf = tmp_path / "xsf"
    assert main(["data", "export", str(labelled_file), "-o", str(xsf), "--format", "xsf"]) == 0
    assert len(list(xsf.glob("*.xsf"))) == 6
    merged = tmp_path / "merged.extxyz"
    assert main(["data", "merge", str(labelled_file), str(xz), "-o", str(merged)]) == 0
    assert len(read_structures(merged)) == 12
    low = tmp_path / "low.extxyz"
    assert main(["data", "select", str(labelled_file), "--max-energy", "0.03", "--relative",
                 "-o", str(low)]) == 0
    kept = read_structures(low)
    assert all(a.get_potential_energy() / 2 <= -14.0 + 0.03 for a in kept) and len(kept) == 3
    hot = tmp_path / "hot.extxyz"
    assert main(["data", "select", str(labelled_file), "--where", "temperature_K=1000",
                 "-o", str(hot)]) == 0
    assert len(read_structures(hot)) == 3
    tr, te = tmp_path / "train.extxyz", tmp_path / "test.extxyz"
    assert main(["data", "split", str(labelled_file), "--test-fraction", "0.34", "-o", str(tr),
                 str(te)]) == 0
    assert len(read_structures(tr)) == 4 and len(read_structures(te)) == 2
    capsys.readouterr()


def test_export_n2p2(labelled_file, tmp_path):
    pytest.importorskip("hdnnp.n2p2.data", reason="n2p2 input.data I/O not available yet")
    from hdnnp.io import read_structures

    out = tmp_path / "input.data"
    assert main(["data", "export", str(labelled_file), "-o", str(out), "--format",
                 "n2p2"]) == 0
    back = read_structures(out, format="n2p2")
    assert len(back) == 6
    assert back[0].get_potential_energy() == pytest.approx(
        read_structures(labelled_file)[0].get_potential_energy(), abs=1e-6)


def test_malformed_file_is_one_line_error(tmp_path, capsys):
    bad = tmp_path / "broken.extxyz"
    bad.write_text("2\nLattice=\"1 0 0 0 1 0\" Properties=species:S:1:pos:R:3\nH 0 0 0\n")
    assert main(["data", "summary", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hdnnp: error:") and "broken.extxyz" in err and err.count("\n") == 1
    assert main(["data", "summary", str(tmp_path / "missing.xyz")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_build_sample_augment_commands(tmp_path, capsys):
    from hdnnp.io import read_structures

    g = tmp_path / "g.extxyz"
    assert main(["build", "graphene", "--repeat", "3", "3", "1", "-o", str(g)]) == 0
    assert "C18" in capsys.readouterr().out
    assert main(["build", "--list"]) == 0
    assert "brookite" in capsys.readouterr().out
    aug = tmp_path / "aug.extxyz"
    assert main(["augment", str(g), "--scale-grid", "-0.1", "0", "0.1", "--tilt", "0.05",
                 "--rattle", "0.02", "--copies", "2", "-o", str(aug)]) == 0
    assert len(read_structures(aug)) == 3 + 1 + 2
    from hdnnp.reference_data.forcefields import lammps_available

    if lammps_available():
        md = tmp_path / "md.extxyz"
        assert main(["sample", str(g), "--temperatures", "300", "--snapshots", "2",
                     "--timestep", "0.5", "--interval", "10", "--equilibration", "10",
                     "--quiet", "-o", str(md)]) == 0
        snaps = read_structures(md)
        assert len(snaps) == 2 and snaps[0].info["sampler"] == "tersoff-bnc"


#: the thesis's materials bundled as sets A and B: (structures per set, composition)
BUNDLED_AB = {"hbn": (300, {"B": 36, "N": 36}), "cbn": (300, {"B": 32, "N": 32}),
              "silica-bilayer": (200, {"Si": 16, "O": 32}),
              "quartz": (200, {"Si": 24, "O": 48}), "rutile": (200, {"Ti": 24, "O": 48})}


@pytest.mark.parametrize("material", sorted(BUNDLED_AB))
def test_bundled_sets_a_and_b(material):
    """Sets A (MD only) and B (80 % scaled) of the thesis materials (§5.1): the counts,
    composition and provenance of DATA.md; B reaches higher energies than A."""
    n, composition = BUNDLED_AB[material]
    a, b = (load_bundled_dataset(f"{material}-{s}") for s in "AB")
    for name, ds in ((f"{material}-A", a), (f"{material}-B", b)):
        meta = bundled_metadata(name)
        assert len(ds) == meta["structures"] == n and meta["failed"] == 0
        assert all(dict(Counter(s.get_chemical_symbols())) == composition for s in ds)
        assert ds[0].get_forces().shape == (sum(composition.values()), 3)
        assert ds.reference_energies == meta["reference_energies"]
        assert set(ds.reference_energies) == set(composition)
        assert ds.cohesive_energies().max() == pytest.approx(meta["energy_per_atom"]["max"])
        assert {s.info["method"] for s in ds} == {"GFN1-xTB"}
    assert {s.info["augmentation"] for s in a} == {"none"}
    assert sorted({float(s.info["temperature_K"]) for s in a}) == [300, 500, 750, 1000]
    assert [s.info["augmentation"] for s in b].count("scale") == round(0.8 * n)
    assert np.ptp(b.cohesive_energies()) > 3 * np.ptp(a.cohesive_energies())


def test_summary_by_key_matches_a_direct_count(capsys):
    """Per-temperature / per-augmentation statistics (thesis tables 3.1-3.2)."""
    from hdnnp.cli import main

    ds = load_bundled_dataset("graphene-B")
    by = ds.summary_by("augmentation")
    e = ds.cohesive_energies()
    scaled = np.array([a.info["augmentation"] == "scale" for a in ds])
    assert list(by) == ["none", "scale"]
    assert by["scale"]["structures"] == scaled.sum() == 400
    assert by["scale"]["energy_per_atom"]["mean"] == pytest.approx(e[scaled].mean())
    assert by["none"]["energy_per_atom"]["max"] == pytest.approx(e[~scaled].max())
    f = np.concatenate([a.get_forces() for a, s in zip(ds, scaled) if not s])
    assert by["none"]["force_rms_eV_per_A"] == pytest.approx(np.sqrt((f ** 2).mean()))
    temps = ds.summary_by("temperature_K")
    assert list(temps) == ["300.0", "500.0", "750.0", "1000.0"]  # numeric order
    assert sum(g["structures"] for g in temps.values()) == len(ds)
    assert main(["data", "summary", "graphene-B", "--by", "temperature_K"]) == 0
    assert "by temperature_K:" in capsys.readouterr().out
