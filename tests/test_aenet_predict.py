"""ænet potentials in and out, checked against ænet's own programs (issue 12, items 2-3).

* ænet ``generate.x`` + ``train.x`` on six TiO2 structures (Chebyshev and Behler2011
  set-ups, three BFGS iterations) → its ``*.nn`` files → ``hdnnp.Calculator`` and
  ``hdnnp predict --aenet`` reproduce ``predict.x``;
* hdnnp models (Chebyshev and Behler G1-G5, non-trivial weights and normalisation) →
  ``hdnnp export --format aenet`` → ``predict.x`` reproduces hdnnp.

Tolerances: energies 1e-6 eV/atom, forces 1e-5 eV/Å (``predict.x`` prints forces with six
decimals, energies with eight).  Everything runs in a few seconds; without a Fortran
compiler the tests skip through ``peer_bin``.
"""

from __future__ import annotations

import json
import re
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from hdnnp.aenet.nnfile import read_nn, to_binary, to_text
from hdnnp.aenet.potential import predict_in
from hdnnp.calculator import Calculator
from hdnnp.cli import main
from hdnnp.descriptors import Chebyshev, SymmetryFunctions, default_behler_functions
from hdnnp.io import read_structures
from hdnnp.model import NeuralNetworkPotential
from hdnnp.potential import load_potential, save_potential
from peer_tools import peer_bin

from conftest import TIO2_ARCHIVE, TIO2_REFERENCE_ENERGIES, require_shared

E_TOL = 1e-6   # eV/atom
F_TOL = 1e-5   # eV/Å
STRUCTURES = ["structure0001.xsf", "structure0002.xsf", "structure0003.xsf",
              "structure0161.xsf", "structure0209.xsf", "structure0212.xsf"]

CHEBYSHEV_BASIS = ("BASIS type=Chebyshev\n"
                   "radial_Rc = 5.0  radial_N = 6  angular_Rc = 3.5  angular_N = 3\n")
BEHLER_FUNCTIONS = """\
SYMMFUNC type=Behler2011
14
G=4 type2=O  type3=Ti  eta=0.01  lambda=-1.0 zeta=2.0 Rc=4.5
G=2 type2=O  eta=0.5 Rs=2.0  Rc=5.0
G=1 type2=Ti Rc=4.0
G=5 type2=O  type3=O   eta=0.02  lambda=1.0  zeta=1.0 Rc=4.5
G=2 type2=Ti eta=0.3 Rs=3.0  Rc=5.0
G=3 type2=O  kappa=1.5  Rc=4.5
G=5 type2=Ti type3=Ti  eta=0.02  lambda=1.0  zeta=4.0 Rc=4.5
G=2 type2=O  eta=1.0 Rs=1.8  Rc=5.0
G=4 type2=Ti type3=O   eta=0.005 lambda=1.0  zeta=1.0 Rc=4.5
G=1 type2=O  Rc=3.5
G=5 type2=Ti type3=O   eta=0.01  lambda=-1.0 zeta=1.0 Rc=4.5
G=3 type2=Ti kappa=0.8  Rc=5.0
G=4 type2=O  type3=O   eta=0.01  lambda=1.0  zeta=2.0 Rc=4.5
G=2 type2=Ti eta=0.6 Rs=2.8  Rc=5.0
"""
#: the networks of each set-up: every ænet activation appears somewhere
NETWORKS = {"chebyshev": ("  Ti  Ti.nn  2  5:tanh  4:twist\n"
                          "  O   O.nn   2  5:sigmoid  4:tanh\n"),
            "behler": ("  Ti  Ti.nn  2  6:twist  3:mtanh\n"
                       "  O   O.nn   2  4:tanh  5:linear\n")}
#: the species in the order of the set-ups' ENV lists (and so of predict.in's TYPES)
SPECIES = ["Ti", "O"]


def parse_predict_out(text: str) -> list[tuple[float, np.ndarray]]:
    """(total energy in eV, forces [N, 3] in eV/Å) of every structure of predict.x's output."""
    out = []
    number = r"(-?\d+\.\d+)"
    row = re.compile(r"^\s*[A-Z][a-z]?" + r"\s+" + r"\s+".join([number] * 6) + r"\s*$", re.M)
    for block in text.split("Structure number")[1:]:
        energy = float(re.search(r"Total energy\s*:\s*(\S+)\s*eV", block).group(1))
        forces = np.array([[float(x) for x in m[3:6]] for m in row.findall(block)])
        out.append((energy, forces))
    return out


def run_predict_x(workdir: Path, networks: dict[str, str], structures: list[Path]):
    (workdir / "predict.in").write_text(predict_in(networks, structures))
    proc = subprocess.run([str(peer_bin("aenet") / "predict.x"), "predict.in"], cwd=workdir,
                          capture_output=True, text=True, timeout=120)
    result = parse_predict_out(proc.stdout)
    assert len(result) == len(structures), proc.stdout[-2000:] + proc.stderr[-2000:]
    return result


@pytest.fixture(scope="module")
def xsf_files(tmp_path_factory) -> list[Path]:
    archive = require_shared(TIO2_ARCHIVE)
    root = tmp_path_factory.mktemp("aenet-xsf")
    with tarfile.open(archive) as tar:
        for name in STRUCTURES:
            member = tar.getmember(f"xsf/{name}")
            (root / name).write_bytes(tar.extractfile(member).read())
    return [root / n for n in STRUCTURES]


def _setup_file(element: str, basis: str) -> str:
    return (f"DESCR\n  test set-up for {element}\nEND DESCR\n\nATOM {element}\n\n"
            f"ENV  2\nTi\nO\n\nRMIN 0.75d0\n\n{basis}")


@pytest.fixture(scope="module", params=["chebyshev", "behler"])
def aenet_trained(request, tmp_path_factory, xsf_files) -> Path:
    """ænet's generate.x + train.x (3 BFGS iterations) on the six structures."""
    bin_dir = peer_bin("aenet")
    kind = request.param
    work = tmp_path_factory.mktemp(f"aenet-{kind}")
    basis = CHEBYSHEV_BASIS if kind == "chebyshev" else BEHLER_FUNCTIONS
    for el in SPECIES:
        (work / f"{el}.stp").write_text(_setup_file(el, basis))
    e_ref = TIO2_REFERENCE_ENERGIES
    (work / "generate.in").write_text(
        "OUTPUT  TiO2.train\n\nTYPES\n2\n"
        + "".join(f"{el}  {e_ref[el]!r}\n" for el in SPECIES)
        + "\nSETUPS\n" + "".join(f"{el}  {el}.stp\n" for el in SPECIES)
        + f"\nFILES\n{len(xsf_files)}\n" + "".join(f"{p}\n" for p in xsf_files))
    (work / "train.in").write_text("TRAININGSET TiO2.train\nTESTPERCENT 20\nITERATIONS 3\n\n"
                                   "METHOD\nbfgs\n\nNETWORKS\n" + NETWORKS[kind])
    for prog, inp in (("generate.x", "generate.in"), ("train.x", "train.in")):
        proc = subprocess.run([str(bin_dir / prog), inp], cwd=work, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    for el in SPECIES:
        assert (work / f"{el}.nn").exists()
    return work


def calculate(calc, structures) -> tuple[list[float], list[np.ndarray]]:
    """Energies (eV) and forces (eV/Å) of ``structures`` with the ASE calculator ``calc``."""
    energies, forces = [], []
    for atoms in structures:
        a = atoms.copy()
        a.calc = calc
        energies.append(a.get_potential_energy())
        forces.append(a.get_forces())
    return energies, forces


def _compare(pred_energy, pred_forces, reference, structures):
    """Largest energy (eV/atom) and force (eV/Å) differences."""
    de, df = 0.0, 0.0
    for k, atoms in enumerate(structures):
        e_ref, f_ref = reference[k]
        de = max(de, abs(pred_energy[k] - e_ref) / len(atoms))
        df = max(df, float(np.abs(pred_forces[k] - f_ref).max()))
    return de, df


def test_aenet_potential_in_reproduces_predict_x(aenet_trained, xsf_files, tmp_path):
    reference = run_predict_x(aenet_trained, {el: f"{el}.nn" for el in SPECIES}, xsf_files)
    structures = [read_structures(p)[0] for p in xsf_files]
    # hdnnp.Calculator on the directory of *.nn files
    energies, forces = calculate(Calculator(aenet_trained, extrapolation="ignore"), structures)
    de, df = _compare(energies, forces, reference, structures)
    print(f"\nænet → hdnnp ({aenet_trained.name}): max |ΔE| {de:.2e} eV/atom, "
          f"max |ΔF| {df:.2e} eV/Å over {len(structures)} structures")
    assert de <= E_TOL and df <= F_TOL, (de, df)
    # the files change between iterations: a different potential must not agree
    other = aenet_trained / "Ti.nn-00001"
    if other.exists() and to_binary(read_nn(other)) != to_binary(read_nn(aenet_trained /
                                                                            "Ti.nn")):
        calc2 = Calculator({"Ti": other, "O": aenet_trained / "O.nn"}, extrapolation="ignore")
        a = structures[0].copy()
        a.calc = calc2
        assert abs(a.get_potential_energy() - reference[0][0]) / len(a) > E_TOL
    # hdnnp predict --aenet Ti=... O=... (and the ascii form of the same files)
    for el in SPECIES:
        (tmp_path / f"{el}.nn.ascii").write_text(to_text(read_nn(aenet_trained / f"{el}.nn")))
    for form in ("nn", "nn.ascii"):
        folder = aenet_trained if form == "nn" else tmp_path
        out = tmp_path / f"pred-{form}.json"
        args = ["predict", "--aenet", *(f"{el}={folder / f'{el}.{form}'}" for el in SPECIES),
                *map(str, xsf_files), "--quiet", "--json", str(out), "-o",
                str(tmp_path / f"pred-{form}.extxyz")]
        assert main(args) == 0
        pred = json.loads(out.read_text())["energy_eV"]
        written = read_structures(tmp_path / f"pred-{form}.extxyz")
        de, df = _compare(pred, [a.get_forces() for a in written], reference, structures)
        assert de <= E_TOL and df <= F_TOL, (form, de, df)


def _randomised(model: NeuralNetworkPotential, seed: int) -> NeuralNetworkPotential:
    """Non-trivial weights, input standardisation and energy scaling."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for el in model.elements:
            net = model.networks[el]
            for layer in net.layers:
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=g,
                                               dtype=torch.float64) * 0.5)
                layer.bias.copy_(torch.randn(layer.bias.shape, generator=g,
                                             dtype=torch.float64) * 0.3)
            n = net.n_inputs
            net.input_shift.copy_(torch.rand(n, generator=g, dtype=torch.float64) * 3)
            net.input_scale.copy_(torch.rand(n, generator=g, dtype=torch.float64) + 0.2)
            net.output_scale.fill_(0.7)
            net.output_shift.fill_(-2.5)
            net.feature_min.fill_(-100.0)
            net.feature_max.fill_(100.0)
    return model


def hdnnp_models() -> dict[str, NeuralNetworkPotential]:
    ref = TIO2_REFERENCE_ENERGIES
    behler = [
        *default_behler_functions(SPECIES, 5.0, n_radial=4, n_angular=4),
        {"type": "G1", "center": "Ti", "neighbours": ["O"], "rc": 4.0},
        {"type": "G3", "center": "O", "neighbours": ["Ti"], "rc": 4.5, "kappa": 1.1},
        {"type": "G4", "center": "O", "neighbours": ["O", "Ti"], "rc": 4.5, "eta": 0.01,
         "lambda": -1, "zeta": 2},
        {"type": "G4", "center": "Ti", "neighbours": ["Ti", "Ti"], "rc": 4.2, "eta": 0.02,
         "lambda": 1, "zeta": 1}]
    return {
        "chebyshev": _randomised(NeuralNetworkPotential(
            Chebyshev(SPECIES, 5.5, 8, 4.0, 4), hidden=(6, 5), activation=["tanh", "twist"],
            reference_energies=ref), 1),
        "behler": _randomised(NeuralNetworkPotential(
            SymmetryFunctions(SPECIES, behler), hidden=(5,), activation="sigmoid",
            reference_energies=ref), 2),
    }


@pytest.mark.parametrize("kind", ["chebyshev", "behler"])
def test_hdnnp_potential_out_reproduced_by_predict_x(kind, xsf_files, tmp_path):
    peer_bin("aenet")
    model = hdnnp_models()[kind]
    save_potential(model, tmp_path / "model.json")
    out = tmp_path / "aenet"
    assert main(["export", str(tmp_path / "model.json"), str(out), "--format", "aenet"]) == 0
    reference = run_predict_x(out, {el: f"{el}.nn" for el in SPECIES}, xsf_files)
    structures = [read_structures(p)[0] for p in xsf_files]
    energies, forces = calculate(Calculator(tmp_path / "model.json", extrapolation="ignore"),
                                 structures)
    de, df = _compare(energies, forces, reference, structures)
    print(f"\nhdnnp → ænet ({kind}): max |ΔE| {de:.2e} eV/atom, max |ΔF| {df:.2e} eV/Å "
          f"over {len(structures)} structures")
    assert de <= E_TOL and df <= F_TOL, (de, df)
    # read back (binary and ascii): the same model up to rounding of the folded scaling
    assert main(["export", str(tmp_path / "model.json"), str(tmp_path / "ascii"),
                 "--format", "aenet", "--aenet-ascii"]) == 0
    for folder in (out, tmp_path / "ascii"):
        back = load_potential(folder)
        a = structures[0].copy()
        a.calc = Calculator(back, extrapolation="ignore")
        assert abs(a.get_potential_energy() - energies[0]) < 1e-9
        assert np.abs(a.get_forces() - forces[0]).max() < 1e-9
        for el in SPECIES:
            assert torch.equal(back.networks[el].feature_min.cpu(),
                               torch.full_like(back.networks[el].feature_min.cpu(), -100.0))
    for el in SPECIES:
        assert to_binary(read_nn(tmp_path / "ascii" / f"{el}.nn.ascii")) == \
            (out / f"{el}.nn").read_bytes()


def test_trained_files_round_trip_bit_exactly_through_ascii(aenet_trained, tmp_path):
    for el in SPECIES:
        raw = (aenet_trained / f"{el}.nn").read_bytes()
        f = read_nn(aenet_trained / f"{el}.nn")
        assert to_binary(f) == raw
        (tmp_path / f"{el}.nn.ascii").write_text(to_text(f))
        assert to_binary(read_nn(tmp_path / f"{el}.nn.ascii")) == raw


def test_models_trained_by_hdnnp_export_to_predict_x(xsf_files, tmp_path):
    """Tiny hdnnp trainings (Chebyshev and Behler, 2 epochs on the six structures:
    normalisation and feature ranges from data) → export → ``predict.x``."""
    from hdnnp.training import train

    peer_bin("aenet")
    structures = [read_structures(p)[0] for p in xsf_files]
    for kind, desc in (("chebyshev", {"kind": "chebyshev", "radial_rc": 5.0,
                                      "radial_order": 6, "angular_rc": 3.5,
                                      "angular_order": 3}),
                       ("behler", {"kind": "behler", "cutoff": 4.5, "size": 3})):
        run = tmp_path / kind
        train({"data": {"train": [str(xsf_files[0].parent)], "test_fraction": 0.2, "seed": 1},
               "descriptor": desc, "network": {"hidden": [5, 4], "activation": "tanh"},
               "training": {"optimizer": "adam", "epochs": 2, "batch_size": 2,
                            "learning_rate": 0.01, "force_weight": 0.05, "seed": 2,
                            "threads": 1},
               "output": str(run)}, progress=False, log=lambda *a, **k: None)
        model = load_potential(run / "model.json")
        assert main(["export", str(run / "model.json"), str(run / "aenet"), "--format",
                     "aenet"]) == 0
        reference = run_predict_x(run / "aenet", {el: f"{el}.nn" for el in model.elements},
                                  xsf_files)
        energies, forces = calculate(Calculator(model, extrapolation="ignore"), structures)
        de, df = _compare(energies, forces, reference, structures)
        print(f"\nhdnnp (trained {kind}) → ænet: max |ΔE| {de:.2e} eV/atom, max |ΔF| "
              f"{df:.2e} eV/Å")
        assert de <= E_TOL and df <= F_TOL, (kind, de, df)
