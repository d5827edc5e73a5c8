#!/usr/bin/env python
"""Regenerate hdnnp's bundled data sets with hdnnp's own commands (see DATA.md).

Usage::

    OMP_NUM_THREADS=1 python scripts/make_bundled_data.py graphene
    OMP_NUM_THREADS=1 python scripts/make_bundled_data.py diamond --workers 2
    python scripts/make_bundled_data.py --list

Each recipe runs ``hdnnp build`` → ``hdnnp sample`` → ``hdnnp augment`` →
``hdnnp label`` → ``hdnnp data export`` in a work directory (default
``build/bundled/<material>``; labelling resumes there if interrupted) and writes
``src/hdnnp/data/<name>.extxyz.xz`` plus a JSON sidecar with the method, settings,
program versions, reference energies, the exact commands, counts and energy ranges.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "src" / "hdnnp" / "data"



def _ab_sets(material: str, what: str, n: int = 300) -> list:
    """Data sets A (MD only) and B (80 % scaled ±10 %, 20 % MD) of ``n`` structures."""
    return [(f"{material}-A", ["--recipe", "A", "--seed", "1"],
             f"{what}, data set A: NVT MD only, 300/500/750/1000 K"),
            (f"{material}-B", ["--recipe", "B", "--n", str(n), "--k", "10", "--seed", "2"],
             f"{what}, data set B: 80 % scaled (±10 %) / 20 % MD")]


def _recipe(material: str, repeat: str, sampler: str, what: str,
            snapshots: int = 75) -> dict:
    """Build relaxed with GFN1-xTB, ``snapshots`` MD snapshots per temperature with
    ``sampler`` (set A: all of them, 4 x ``snapshots``), set B of as many structures
    (:func:`_ab_sets`), labels at the default 300 K electronic temperature."""
    return {"build": [material, "--repeat", *repeat.split(), "--relax", "GFN1-xTB"],
            "sample": ["--sampler", sampler, "--snapshots", str(snapshots), "--seed", "1"],
            "sets": _ab_sets(material, what, 4 * snapshots)}


# material -> (build args, sample args, [(set name, augment args, description)])
RECIPES = {
    "graphene": {
        "build": ["graphene", "--repeat", "6", "6", "1", "--relax", "GFN1-xTB"],
        "sample": ["--sampler", "tersoff-bnc", "--snapshots", "125", "--seed", "1"],
        # Γ-point GFN1 forces of the semimetal are long-ranged at 300 K Fermi smearing
        # (a 0.1 Å move changes forces 8 Å away by 0.36 eV/Å); 3000 K makes them local
        # (0.04 eV/Å) so that a short-ranged potential can learn them (see DATA.md)
        "label": ["--electronic-temperature", "3000"],
        "sets": [
            ("graphene-A", ["--recipe", "A", "--seed", "1"],
             "graphene 6x6 (72 atoms), data set A: NVT MD only, 300/500/750/1000 K"),
            ("graphene-B", ["--recipe", "B", "--n", "500", "--k", "10", "--seed", "2"],
             "graphene 6x6 (72 atoms), data set B: 80 % scaled (±10 %) / 20 % MD"),
        ],
    },
    "diamond": {
        "build": ["diamond", "--repeat", "2", "2", "2", "--relax", "GFN1-xTB"],
        "sample": ["--sampler", "lcbop", "--snapshots", "100", "--seed", "1"],
        "sets": [
            ("diamond-A", ["--recipe", "A", "--seed", "1"],
             "diamond 2x2x2 (64 atoms), data set A: NVT MD only, 300/500/750/1000 K"),
        ],
    },
    # the thesis's other materials (issue 13): 300 MD snapshots (A) and 300 structures
    # of which 80 % scaled by ±10 % (B) each (200 and 200 for the SiO2 and TiO2 sets,
    # whose GFN1-xTB labels cost 2-3 times more per structure), GFN1-xTB at 300 K
    # electronic temperature (insulators: the forces are local without extra smearing)
    "hbn": _recipe("hbn", "6 6 1", "extep", "hBN 6x6 (72 atoms)"),
    "cbn": _recipe("cbn", "2 2 2", "extep", "cubic BN 2x2x2 (64 atoms)"),
    "silica-bilayer": _recipe("silica-bilayer", "2 2 1", "tersoff-sio",
                              "2D silica bilayer 2x2 (48 atoms)", snapshots=50),
    "quartz": _recipe("quartz", "2 2 2", "tersoff-sio", "alpha-quartz 2x2x2 (72 atoms)",
                      snapshots=50),
    "rutile": _recipe("rutile", "2 2 3", "matsui-akaogi", "TiO2 rutile 2x2x3 (72 atoms)",
                      snapshots=50),
}


def hdnnp(argv: list[str], log: list[str]) -> None:
    from hdnnp.cli import main

    line = "hdnnp " + shlex.join(argv)
    print(f"$ {line}", flush=True)
    log.append(line)
    t0 = time.perf_counter()
    rc = main(argv)
    if rc != 0:
        sys.exit(f"command failed ({rc}): {line}")
    print(f"  ({time.perf_counter() - t0:.1f} s)", flush=True)


def make(material: str, workdir: Path, workers: int) -> None:
    from hdnnp.cli.cmd_data import dataset_summary
    from hdnnp.reference_data.labelling import failures, job_metadata, load_labelled

    rec = RECIPES[material]
    workdir.mkdir(parents=True, exist_ok=True)
    w = workdir.relative_to(ROOT) if workdir.is_relative_to(ROOT) else workdir
    commands: list[str] = []
    start = w / f"{material}.xyz"
    md = w / f"{material}-md.xyz"
    if not (ROOT / start).exists():
        hdnnp(["build", *rec["build"], "-o", str(start)], commands)
    else:
        commands.append("hdnnp " + shlex.join(["build", *rec["build"], "-o", str(start)]))
    if not (ROOT / md).exists():
        hdnnp(["sample", str(start), *rec["sample"], "--quiet", "-o", str(md)], commands)
    else:
        commands.append("hdnnp " + shlex.join(["sample", str(start), *rec["sample"],
                                              "--quiet", "-o", str(md)]))
    for name, aug_args, description in rec["sets"]:
        cmds = list(commands)
        inp = w / f"{name}-unlabelled.xyz"
        db = w / f"{name}.db"
        out = DATA.relative_to(ROOT) / f"{name}.extxyz.xz"
        hdnnp(["augment", str(md), *aug_args, "-o", str(inp)], cmds)
        t0 = time.perf_counter()
        hdnnp(["label", str(inp), "-o", str(db), *rec.get("label", []), "--workers",
               str(workers), "--quiet"], cmds)
        label_s = time.perf_counter() - t0
        hdnnp(["data", "export", str(db), "-o", str(out)], cmds)
        ds = load_labelled(ROOT / db)
        meta = job_metadata(ROOT / db)
        summ = dataset_summary(ds)
        failed = len(failures(ROOT / db))
        side = {
            "name": name,
            "description": description,
            "method": meta["reference_settings"]["method"],
            "reference_settings": meta["reference_settings"],
            "reference_energies": meta["reference_energies"],
            "reference_energies_note": "isolated atoms, same method and settings "
                                       "(spin-restricted, default occupation)",
            "versions": meta["versions"],
            "commands": cmds,
            "structures": summ["structures"],
            "atoms": summ["atoms"],
            "elements": summ["elements"],
            "failed": failed,
            "energy_per_atom": summ["energy_per_atom"],
            "label_wall_s_this_run": round(label_s, 1),
            "created": time.strftime("%Y-%m-%d"),
            "units": {"energy": "eV", "forces": "eV/Angstrom", "length": "Angstrom"},
        }
        aug = {}
        for a in ds:
            k = str(a.info.get("augmentation", "none"))
            aug[k] = aug.get(k, 0) + 1
        side["augmentation_counts"] = aug
        temps = {}
        for a in ds:
            t = a.info.get("temperature_K")
            if t is not None:
                temps[str(int(t))] = temps.get(str(int(t)), 0) + 1
        side["temperature_counts"] = temps
        from hdnnp.fileio import atomic_write_text

        atomic_write_text(DATA / f"{name}.json", json.dumps(side, indent=2) + "\n")
        print(json.dumps({k: side[k] for k in ("name", "structures", "energy_per_atom")},
                         indent=2))


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("materials", nargs="*", help=f"any of {', '.join(RECIPES)}")
    p.add_argument("--list", action="store_true")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--workdir", type=Path, default=ROOT / "build" / "bundled")
    args = p.parse_args()
    if args.list or not args.materials:
        for m, r in RECIPES.items():
            print(m, [s[0] for s in r["sets"]])
        return
    unknown = [m for m in args.materials if m not in RECIPES]
    if unknown:
        p.error(f"unknown material(s) {unknown}; known: {', '.join(RECIPES)}")
    os.chdir(ROOT)
    for m in args.materials:
        make(m, args.workdir / m, args.workers)


if __name__ == "__main__":
    main()
