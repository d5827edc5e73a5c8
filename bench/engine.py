"""Benchmark: hdnnp's descriptor engine against n2p2's own code, side by side in one run.

n2p2's ``libnnp`` is built from ``../shared/tools/n2p2`` (its ``build.sh``); its driver
``nnp_time`` repeats n2p2's prediction sequence (neighbour list, symmetry functions with
derivatives, networks, energy, forces) in one long-lived process, one repetition per line
on stdin, so n2p2 and hdnnp calls are interleaved on the same structure: rounds of
(n2p2 call, hdnnp call), medians over the rounds, one thread each.  Cases:

* ``h2o-1080``, ``h2o-8640``: the shared n2p2 water potential (H2O_RPBE-D3) on its
  1080-atom configuration and that box repeated 2×2×2; energy + forces with and without
  the neighbour list; peak memory growth of both programs at 8640 atoms (separate
  processes: peak RSS during the call minus RSS before it);
* ``polynomial``: a synthetic n2p2 potential written here — H, C, O, 348 functions per
  element of types 20 and 22 (subtype p2, cutoff 15 bohr), 2×25 softplus with random
  weights — on a 384-atom liquid methanol box at 0.79 g/cm³ (exported by hdnnp in n2p2
  format, so n2p2 reads the same potential);
* ``h2o-69120`` (4×4×4) and ``h2o-552960`` (8×8×8): hdnnp alone (n2p2's neighbour list is
  O(N²)): time per atom and peak memory;
* thread scaling (1 vs 2 threads) at 8640 atoms; the training featurisation of the
  bundled graphene-A set with the README job's descriptor; the first call in a new
  process against warm calls.

Writes ``bench/results/engine.json``.  Usage::

    python bench/engine.py [--repeats 7] [--skip-large] [--only h2o-1080,polynomial]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
WATER = SHARED / "data" / "n2p2" / "H2O_RPBE-D3"
WORK = ROOT / "bench" / "work" / "engine"
POTENTIAL_FILES = ("input.nn", "scaling.data")


def set_threads(n: int) -> None:
    import numba
    import torch

    torch.set_num_threads(n)
    numba.set_num_threads(n)


def rss_mb(pid: str | int = "self") -> tuple[float, float]:
    """(current RSS, peak RSS) of a process in MiB, from /proc."""
    cur = peak = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            cur = float(line.split()[1]) / 1024
        elif line.startswith("VmHWM:"):
            peak = float(line.split()[1]) / 1024
    return cur, peak


# ------------------------------------------------------------------ inputs
def n2p2_bin() -> Path:
    out = subprocess.run(["bash", str(SHARED / "tools" / "n2p2" / "build.sh")],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"building n2p2 failed:\n{out.stderr[-2000:]}")
    return Path(out.stdout.strip().splitlines()[-1])


def water_case(name: str, repeat: int) -> Path:
    """n2p2 directory of the water potential with the 1080-atom box repeated."""
    from hdnnp.n2p2.data import read_input_data, write_input_data

    d = WORK / name
    if (d / "input.data").exists():
        return d
    d.mkdir(parents=True, exist_ok=True)
    for f in list(POTENTIAL_FILES) + [p.name for p in WATER.glob("weights.*.data")]:
        (d / f).write_bytes((WATER / f).read_bytes())
    (atoms,) = read_input_data(WATER / "large-1080.data", input_nn=WATER)
    write_input_data(d / "input.data", [atoms.repeat(repeat)], input_nn=WATER)
    return d


def methanol_box(n_side: int = 4, density: float = 0.79, seed: int = 3):
    """Liquid methanol: n_side³ molecules on a grid with random orientations (g/cm³)."""
    from ase import Atoms
    from ase.build import molecule
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(seed)
    mol = molecule("CH3OH")
    mol.positions -= mol.get_center_of_mass()
    n = n_side**3
    mass = n * mol.get_masses().sum()  # g/mol
    box = (mass / (density * 0.602214076)) ** (1.0 / 3.0)  # Å
    spacing = box / n_side
    pos: list = []
    sym: list = []
    cell = np.full(3, box)
    for ix in range(n_side):
        for iy in range(n_side):
            for iz in range(n_side):
                # rejection per molecule: a random orientation and offset whose atoms keep
                # 1.5 Å from every molecule placed so far (minimum image)
                for _ in range(10000):
                    centre = (np.array([ix, iy, iz]) + 0.5 + rng.uniform(-0.1, 0.1, 3)) * spacing
                    rot = Rotation.random(random_state=rng.integers(1 << 31)).as_matrix()
                    trial = mol.positions @ rot.T + centre
                    if not pos:
                        break
                    diff = trial[:, None, :] - np.asarray(pos)[None, :, :]
                    diff -= cell * np.round(diff / cell)
                    if np.sqrt((diff**2).sum(-1)).min() > 1.5:
                        break
                else:
                    raise RuntimeError("could not place a methanol molecule")
                pos.extend(trial)
                sym.extend(mol.get_chemical_symbols())
    return Atoms(sym, positions=pos, cell=[box] * 3, pbc=True)


def polynomial_functions(rc_bohr: float = 15.0) -> list[dict]:
    """348 compact functions per element of H, C, O (Å): per neighbour element 12 radial
    windows (type 20), per neighbour pair 4 radial × 13 angular windows (type 22)."""
    from hdnnp.units import BOHR

    rc = rc_bohr * BOHR
    elements = ["H", "C", "O"]
    right = np.linspace(2.0, rc, 12)
    radial = [(float(r - 3.0), float(r)) for r in right]
    legs = [(0.0, 3.0), (1.5, 4.5), (3.0, 6.0), (4.5, rc)]
    angles = [(max(c - 15.0, 0.0) if 0 < c < 180 else c - 15.0,
               min(c + 15.0, 180.0) if 0 < c < 180 else c + 15.0) for c in range(0, 181, 15)]
    out = []
    for c in elements:
        for n in elements:
            for rl, rr in radial:
                out.append({"type": 20, "center": c, "neighbours": [n], "rl": rl, "rc": rr,
                            "subtype": "p2"})
        for k, a in enumerate(elements):
            for b in elements[k:]:
                for rl, rr in legs:
                    for al, ar in angles:
                        out.append({"type": 22, "center": c, "neighbours": [a, b], "rl": rl,
                                    "rc": rr, "angle_left": al, "angle_right": ar,
                                    "subtype": "p2"})
    return out


def polynomial_case() -> Path:
    """The synthetic polynomial potential in n2p2 format and the methanol box."""
    import torch

    from hdnnp.descriptors import SymmetryFunctions
    from hdnnp.model import NeuralNetworkPotential
    from hdnnp.n2p2 import export_n2p2_potential
    from hdnnp.n2p2.data import write_input_data
    from hdnnp.neighbours import build_batch

    d = WORK / "polynomial"
    if (d / "input.data").exists():
        return d
    atoms = methanol_box()
    desc = SymmetryFunctions(["H", "C", "O"], polynomial_functions(), cutoff_type=1)
    model = NeuralNetworkPotential(desc, hidden=(25, 25), activation="softplus")
    gen = torch.Generator().manual_seed(7)
    batch = build_batch([atoms], model.elements, model.cutoff)
    g = desc(batch)
    for k, e in enumerate(model.elements):
        net = model.networks[e]
        net.reset_parameters(gen)
        ge = g[batch.species == k, : net.n_inputs]
        with torch.no_grad():
            net.input_shift.copy_(ge.mean(0))
            std = ge.std(0)
            net.input_scale.copy_(torch.where(std > 1e-8, 1.0 / std, torch.ones_like(std)))
            net.feature_min.copy_(ge.min(0).values)
            net.feature_max.copy_(ge.max(0).values)
    model.metadata["source"] = "bench/engine.py synthetic polynomial potential"
    export_n2p2_potential(model, d, overwrite=True)
    write_input_data(d / "input.data", [atoms], length_unit="angstrom", energy_unit="eV")
    return d


# ------------------------------------------------------------------ n2p2
class N2P2:
    """A long-lived ``nnp_time -`` process on one structure."""

    def __init__(self, binary: Path, directory: Path):
        self.cwd = WORK / f"run-{directory.name}"
        self.cwd.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([str(binary / "nnp_time"), "-", str(directory)],
                                     cwd=self.cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1, env=dict(os.environ,
                                                                    OMP_NUM_THREADS="1"))
        header = self.proc.stdout.readline()
        if not header.startswith("setup"):
            raise SystemExit(f"nnp_time failed in {directory}: {header}")
        self.rss_before = rss_mb(self.proc.pid)[0]

    def call(self) -> dict:
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        f = self.proc.stdout.readline().split()
        vals = {f[k]: f[k + 1] for k in range(2, len(f) - 1, 2)}
        return {k: float(vals[k]) for k in ("nl", "sf", "nn", "forces", "total", "noNL", "cpu",
                                            "E")} | {"pairs": int(vals["pairs"])}

    def peak_growth_mb(self) -> float:
        return rss_mb(self.proc.pid)[1] - self.rss_before

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def n2p2_physical_energy(e: float, directory: Path, n_atoms: int) -> float:
    """n2p2 prints normalised energies when input.nn normalises: E/conv_energy + N mean."""
    text = (directory / "input.nn").read_text().split("\n")
    vals = {}
    for line in text:
        parts = line.split("#")[0].split()
        if len(parts) >= 2 and parts[0] in ("mean_energy", "conv_energy"):
            vals[parts[0]] = float(parts[1])
    if "conv_energy" in vals:
        return e / vals["conv_energy"] + n_atoms * vals.get("mean_energy", 0.0)
    return e


# ------------------------------------------------------------------ hdnnp
def load_case(directory: Path):
    from hdnnp.n2p2 import load_n2p2_potential
    from hdnnp.n2p2.data import read_input_data

    model = load_n2p2_potential(directory)
    (atoms,) = read_input_data(directory / "input.data", input_nn=directory)
    return model, atoms


def hdnnp_call(model, atoms) -> dict:
    from hdnnp.neighbours import build_batch

    t0 = time.perf_counter()
    batch = build_batch([atoms], model.elements, model.cutoff)
    t1 = time.perf_counter()
    out = model(batch, forces=True)
    e = float(out["energy"][0])
    f0 = float(out["forces"][0, 0])
    t2 = time.perf_counter()
    del out, batch
    return {"nl": t1 - t0, "call": t2 - t1, "total": t2 - t0, "E": e, "F0": f0}


def compare(binary: Path, directory: Path, repeats: int, energy_unit_factor: float) -> dict:
    """Interleaved rounds of (n2p2, hdnnp) on one structure, one thread each."""
    set_threads(1)
    model, atoms = load_case(directory)
    n2p2 = N2P2(binary, directory)
    n2p2.call()  # warm-up
    hdnnp_call(model, atoms)
    a, b = [], []
    for _ in range(repeats):
        a.append(n2p2.call())
        b.append(hdnnp_call(model, atoms))
    n2p2.close()
    n = len(atoms)
    med = statistics.median
    e_n2p2 = n2p2_physical_energy(a[-1]["E"], directory, n) * energy_unit_factor
    e_hdnnp = b[-1]["E"]
    res = {
        "atoms": n, "pairs_n2p2": a[-1]["pairs"], "repeats": repeats,
        "n2p2_us_per_atom": med(r["total"] for r in a) / n * 1e6,
        "n2p2_no_nl_us_per_atom": med(r["noNL"] for r in a) / n * 1e6,
        "n2p2_nl_us_per_atom": med(r["nl"] for r in a) / n * 1e6,
        "hdnnp_us_per_atom": med(r["total"] for r in b) / n * 1e6,
        "hdnnp_no_nl_us_per_atom": med(r["call"] for r in b) / n * 1e6,
        "hdnnp_nl_us_per_atom": med(r["nl"] for r in b) / n * 1e6,
        "ratio": med(r2["total"] / r1["total"] for r1, r2 in zip(a, b)),
        "ratio_no_nl": med(r2["call"] / r1["noNL"] for r1, r2 in zip(a, b)),
        "energy_n2p2_eV": e_n2p2, "energy_hdnnp_eV": e_hdnnp,
        "energy_relative_difference": abs(e_hdnnp - e_n2p2) / abs(e_n2p2),
        "n2p2_runs": a, "hdnnp_runs": b,
    }
    return res


PROBE = r"""
import json, sys, time
sys.path.insert(0, {bench!r})
import engine
engine.set_threads({threads})
from hdnnp.neighbours import build_batch
model, atoms = engine.load_case(__import__("pathlib").Path({directory!r}))
atoms = atoms.repeat({repeat})
before = engine.rss_mb()[0]
t0 = time.perf_counter()
batch = build_batch([atoms], model.elements, model.cutoff)
t1 = time.perf_counter()
out = model(batch, forces=True)
t2 = time.perf_counter()
e = float(out["energy"][0])
cur, peak = engine.rss_mb()
print(json.dumps({{"atoms": len(atoms), "nl_s": t1 - t0, "call_s": t2 - t1, "energy": e,
                  "rss_before_mb": before, "peak_mb": peak, "peak_growth_mb": peak - before}}))
"""


def probe(directory: Path, repeat: int = 1, threads: int = 1, timeout: float = 3600) -> dict:
    """One NL + energy + forces call in a fresh process: time and peak memory."""
    code = PROBE.format(bench=str(ROOT / "bench"), threads=threads, directory=str(directory),
                        repeat=repeat)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=timeout, env=dict(os.environ, OMP_NUM_THREADS=str(threads)))
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr else "failed",
                "returncode": out.returncode}
    return json.loads(out.stdout.strip().splitlines()[-1])


FIRST_CALL = r"""
import sys, time
sys.path.insert(0, {bench!r})
t0 = time.perf_counter()
import engine
engine.set_threads(1)
from hdnnp.neighbours import build_batch
model, atoms = engine.load_case(__import__("pathlib").Path({directory!r}))
batch = build_batch([atoms], model.elements, model.cutoff)
t1 = time.perf_counter()
ts = []
for _ in range(6):
    a = time.perf_counter(); model(batch, forces=True); ts.append(time.perf_counter() - a)
import json, statistics
print(json.dumps({{"import_and_load_s": t1 - t0, "first_s": ts[0],
                  "warm_s": statistics.median(ts[1:])}}))
"""


def first_call(directory: Path) -> dict:
    code = FIRST_CALL.format(bench=str(ROOT / "bench"), directory=str(directory))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["ratio"] = res["first_s"] / res["warm_s"]
    return res


def thread_speedup(directory: Path, repeats: int) -> dict:
    """Energy + forces (neighbour list built once) on 1 and 2 threads, interleaved."""
    from hdnnp.neighbours import build_batch

    model, atoms = load_case(directory)
    batch = build_batch([atoms], model.elements, model.cutoff)
    times = {1: [], 2: []}
    for threads in (1, 2):  # warm-up
        set_threads(threads)
        model(batch, forces=True)
    for _ in range(repeats):
        for threads in (1, 2):
            set_threads(threads)
            t0 = time.perf_counter()
            model(batch, forces=True)
            times[threads].append(time.perf_counter() - t0)
    set_threads(1)
    return {"one_thread_s": statistics.median(times[1]),
            "two_threads_s": statistics.median(times[2]),
            "speedup": statistics.median(a / b for a, b in zip(times[1], times[2]))}


def featurise_graphene(threads: int) -> dict:
    """FeatureSet (features + force Jacobian) of the bundled graphene-A set with the
    README job's descriptor."""
    import yaml

    from hdnnp.data import load_dataset
    from hdnnp.descriptors import descriptor_from_config
    from hdnnp.training.featureset import FeatureSet

    set_threads(threads)
    cfg = yaml.safe_load((ROOT / "examples" / "graphene-A.yaml").read_text())
    dataset = load_dataset(cfg["data"]["train"][0])
    desc = descriptor_from_config({**cfg["descriptor"], "elements": ["C"]})
    FeatureSet(desc, dataset.subset(range(4)))  # first call: kernels loaded
    t0 = time.perf_counter()
    fs = FeatureSet(desc, dataset)
    dt = time.perf_counter() - t0
    set_threads(1)
    return {"seconds": dt, "structures": len(dataset), "atoms": int(fs.n_atoms.sum()),
            "threads": threads, "stored_mib": fs.memory_bytes() / 2**20}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--skip-large", action="store_true", help="skip the 69,120 / 552,960 runs")
    ap.add_argument("--only", default="", help="comma-separated cases to run")
    ap.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "engine.json")
    args = ap.parse_args(argv)
    if not (WATER / "input.nn").exists():
        raise SystemExit(f"n2p2 water potential not found at {WATER}")
    from hdnnp.fileio import atomic_write_text
    from hdnnp.units import HARTREE

    only = set(filter(None, args.only.split(",")))

    def want(name):
        if res:  # results so far survive an interrupted run
            args.output.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(args.output, json.dumps(res, indent=2) + "\n")
        return not only or name in only

    binary = n2p2_bin()
    res: dict = json.loads(args.output.read_text()) if args.output.exists() and only else {}
    load_before = os.getloadavg()[0]
    h1080, h8640 = water_case("h2o-1080", 1), water_case("h2o-8640", 2)
    if want("h2o-1080"):
        r = compare(binary, h1080, args.repeats, HARTREE)
        res["h2o_1080"] = r
        res["ratio_1080"], res["ratio_1080_no_nl"] = r["ratio"], r["ratio_no_nl"]
        print(f"1080: ratio {r['ratio']:.3f}, no NL {r['ratio_no_nl']:.3f}", flush=True)
    if want("h2o-8640"):
        r = compare(binary, h8640, max(5, args.repeats // 2 + 1), HARTREE)
        res["h2o_8640"] = r
        res["ratio_8640"], res["ratio_8640_no_nl"] = r["ratio"], r["ratio_no_nl"]
        n2p2 = N2P2(binary, h8640)
        n2p2.call()
        n2p2_mb = n2p2.peak_growth_mb()
        n2p2.close()
        mem = probe(h8640)
        res["memory_8640"] = {"n2p2_peak_growth_mb": n2p2_mb, "hdnnp": mem}
        res["memory_ratio_8640"] = mem["peak_growth_mb"] / n2p2_mb
        print(f"8640: ratio {r['ratio']:.3f}, no NL {r['ratio_no_nl']:.3f}, memory "
              f"{res['memory_ratio_8640']:.2f}", flush=True)
    if want("polynomial"):
        poly = polynomial_case()
        r = compare(binary, poly, max(5, args.repeats // 2 + 1), 1.0)
        mem = probe(poly)
        n2p2 = N2P2(binary, poly)
        n2p2.call()
        r["n2p2_peak_growth_mb"] = n2p2.peak_growth_mb()
        n2p2.close()
        r["hdnnp_memory"] = mem
        res["polynomial"] = r
        res["ratio_polynomial"] = r["ratio"]
        res["ratio_polynomial_no_nl"] = r["ratio_no_nl"]
        res["peak_gb_polynomial"] = mem["peak_mb"] / 1024
        print(f"polynomial: ratio {r['ratio']:.3f}, no NL {r['ratio_no_nl']:.3f}, peak "
              f"{res['peak_gb_polynomial']:.2f} GB", flush=True)
    if want("threads"):
        r = thread_speedup(h8640, max(5, args.repeats // 2 + 1))
        res["threads_8640"] = r
        res["thread_speedup_2"] = r["speedup"]
        print(f"threads: speedup {r['speedup']:.2f}", flush=True)
    if want("large") and not args.skip_large:
        small = probe(h1080)
        big = probe(h1080, repeat=4)
        res["h2o_69120"] = big
        res["h2o_1080_probe"] = small
        res["peak_gb_69120"] = big["peak_mb"] / 1024
        res["scaling_69120"] = ((big["nl_s"] + big["call_s"]) / big["atoms"]) / (
            (small["nl_s"] + small["call_s"]) / small["atoms"])
        res["scaling_69120_no_nl"] = (big["call_s"] / big["atoms"]) / (
            small["call_s"] / small["atoms"])
        print(f"69120: peak {res['peak_gb_69120']:.2f} GB, scaling {res['scaling_69120']:.2f}",
              flush=True)
        huge = probe(h1080, repeat=8, timeout=7200)
        res["h2o_552960"] = huge
        res["peak_gb_552960"] = huge.get("peak_mb", float("nan")) / 1024
        print(f"552960: {huge}", flush=True)
    if want("graphene"):
        res["featurise_graphene_a"] = {t: featurise_graphene(t) for t in (1, 2)}
        res["featurise_graphene_a_s"] = res["featurise_graphene_a"][1]["seconds"]
        print(f"graphene-A featurisation: {res['featurise_graphene_a_s']:.1f} s", flush=True)
    if want("first-call"):
        res["first_call"] = first_call(h1080)
        res["first_call_ratio"] = res["first_call"]["ratio"]
        print(f"first call: {res['first_call']}", flush=True)
    res["load_average_before_after"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    res["cpu_count"] = os.cpu_count()
    res["machine"] = platform.processor() or platform.machine()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.output, json.dumps(res, indent=2) + "\n")
    return res


if __name__ == "__main__":
    main()
