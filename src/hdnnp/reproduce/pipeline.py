"""``hdnnp reproduce MATERIAL``: the thesis's chapter-5 experiment on a bundled material.

On the bundled data sets ``MATERIAL-A`` (NVT MD only) and ``MATERIAL-B`` (80 % scaled by
±10 %, 20 % MD; ``DATA.md``), in the output directory (every step resumable: a step
whose outputs exist is not run again, and the training runs resume from checkpoints):

1. ``train/``: potentials A and B (one ``hdnnp study`` of two runs, side by side, one
   thread each; 80/10/10 split, validation-chosen epoch);
2. ``compare/``: A and B on the **original** structures (A's test split, less any
   structure B trained on) and on the **scaled** ones (B's test split's scaled
   structures: A never saw a scaled structure, B never saw these): metrics with Pearson
   r, parity plots, normalised squared-error histograms (thesis figs. 5.11–5.14);
3. ``scan/``: the relaxed structure (rebuilt with the data set's own build command)
   scaled by −10 … +10 %, A, B and the reference method with the labels' own settings,
   the training sets' maximum and mean cohesive energy as lines, dE/df beside it
   (thesis figs. 5.2, 5.10, 5.16);
4. ``studies/``: the optimizer × seed, cutoff and augmented-fraction studies on set A
   (``hdnnp study`` presets, short);
5. ``report.html``: all figures embedded, the tables, the command that makes each
   figure, and the thesis's numbers beside ours where the thesis gives them;
   ``summary.json``: the key figures.
"""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path

import numpy as np

from hdnnp.errors import HdnnpError
from hdnnp.fileio import atomic_write_text

__all__ = ["ReproduceSettings", "reproduce"]

#: The thesis's own numbers where it gives them (meV/atom unless stated; §§4.2, 5.2).
THESIS = {
    "graphene": [
        ("potential A (MD-only data), test energy MAE", "0.5–1.0 meV/atom (§5.3.1, ch. 7)",
         "model_A_original_mae_meV_per_atom"),
        ("graphene, 25 % of the data augmented, test error (study augmentation)",
         "5.4 meV/atom (§4.2.2, fig. 4.10)", "study_augmentation_0.25_test_mean"),
        ("graphene, 50 % augmented, test error (study augmentation)",
         "6.8 meV/atom (§4.2.2)", "study_augmentation_0.5_test_mean"),
        ("graphene, 100 % augmented, test error (study augmentation)",
         "10.6 meV/atom (§4.2.2)", "study_augmentation_1.0_test_mean"),
        ("potential B on MD structures, force Pearson r", "0.77 (fig. 5.13)",
         "model_B_original_force_pearson_r"),
        ("potential A on MD structures, force Pearson r", "0.97 (fig. 5.14)",
         "model_A_original_force_pearson_r"),
        ("potential B on MD structures, energy Pearson r", "0.99 (§5.2)",
         "model_B_original_energy_pearson_r"),
    ],
}


class ReproduceSettings:
    """The knobs of a reproduction: epochs of A/B, of the studies, seeds, parallel jobs."""

    def __init__(self, epochs: int = 300, study_epochs: int = 40, seeds: int = 3,
                 jobs: int = 2, threads: int = 1, scan_points: int = 21,
                 n_structures: int | None = None,
                 studies=("optimizer-seed", "cutoff", "augmentation")):
        if epochs < 1 or study_epochs < 1 or seeds < 1 or jobs < 1 or threads < 1:
            raise HdnnpError("epochs, study epochs, seeds, jobs and threads must be ≥ 1")
        if scan_points < 3:
            raise HdnnpError("the scan needs at least 3 points")
        self.epochs, self.study_epochs, self.seeds = epochs, study_epochs, seeds
        self.jobs, self.threads, self.scan_points = jobs, threads, scan_points
        self.n_structures = n_structures
        self.studies = tuple(studies)

    def to_dict(self) -> dict:
        return dict(vars(self), studies=list(self.studies))


def _training_base(material: str, settings: ReproduceSettings) -> dict:
    """The A/B training: the README main job's settings (examples/graphene-A.yaml)."""
    return {
        "data": {"train": [f"bundled:{material}-A"], "validation_fraction": 0.1,
                 "test_fraction": 0.1, "seed": 1, "n_structures": settings.n_structures},
        "descriptor": {"kind": "chebyshev", "radial_rc": 6.0, "radial_order": 14,
                       "angular_rc": 5.0, "angular_order": 8},
        "network": {"hidden": [20, 20], "activation": "tanh"},
        "training": {"optimizer": "adam", "epochs": settings.epochs, "batch_size": 16,
                     "learning_rate": 5e-3, "learning_rate_final": 1e-5,
                     "force_weight": 0.1, "eval_train_every": 10},
        "figures": False,
    }


def _check_material(material: str) -> None:
    from hdnnp.bundled import list_bundled_datasets

    have = list_bundled_datasets()
    missing = [f"{material}-{s}" for s in "AB" if f"{material}-{s}" not in have]
    if missing:
        mats = sorted({n.rsplit("-", 1)[0] for n in have if n.endswith("-B")})
        raise HdnnpError(f"no bundled data set {', '.join(missing)}; materials with sets A "
                         f"and B: {', '.join(mats) or 'none'}")


# ------------------------------------------------------------------------ steps
def _train(material: str, out: Path, settings: ReproduceSettings, progress: bool):
    from hdnnp.studies.runner import StudyRunner
    from hdnnp.studies.spec import StudySpec

    spec = StudySpec(name=f"{material}: potentials A and B",
                     base=_training_base(material, settings),
                     vary={"data.train": [[f"bundled:{material}-A"],
                                          [f"bundled:{material}-B"]]},
                     names={"data.train": ["A", "B"]}, target=None)
    runner = StudyRunner(spec, out / "train")
    results = runner.run(jobs=min(2, settings.jobs), threads=settings.threads,
                         progress=progress)
    bad = {k: v for k, v in results.items() if v != "done"}
    if bad:
        raise HdnnpError(f"training of {', '.join(bad)} failed: {next(iter(bad.values()))}")
    dirs = {label: runner.run_dir(r) for label, r in zip("AB", runner.runs)}
    return runner, dirs


def _test_sets(material: str, dirs: dict[str, Path]):
    """Original (A's test split less any structure B trained on: B's MD part is drawn
    from the same trajectories) and scaled (B's test split's scaled structures) test
    sets, each tagged ``info["subset"]``."""
    from hdnnp.bundled import load_bundled_dataset
    from hdnnp.data import Dataset, load_dataset
    from hdnnp.reference_data.labelling import structure_hash

    a_test = load_dataset(dirs["A"] / "test.extxyz").structures
    b_test = load_dataset(dirs["B"] / "test.extxyz").structures
    b_train = set(json.loads((dirs["B"] / "split.json").read_text()).get("train", []))
    b_train_hashes = {structure_hash(a) for a in load_bundled_dataset(f"{material}-B")
                      if str(a.info.get("source")) in b_train}
    original = [a for a in a_test if structure_hash(a) not in b_train_hashes]
    scaled = [a for a in b_test if str(a.info.get("augmentation", "none")) != "none"]
    if not original or not scaled:
        raise HdnnpError(f"empty test set (original {len(original)}, scaled "
                         f"{len(scaled)}): are the data sets A and B of the same material?")
    for a in original:
        a.info["subset"] = "original"
    for a in scaled:
        a.info["subset"] = "scaled"
    return Dataset(original + scaled, None), len(original), len(scaled)


def _compare(material: str, dirs: dict[str, Path], out: Path, progress: bool) -> dict:
    from hdnnp.analysis.compare import compare_models
    from hdnnp.bundled import bundled_metadata
    from hdnnp.potential import load_potential

    target = out / "compare"
    if (target / "metrics.json").is_file():
        return json.loads((target / "metrics.json").read_text())
    from hdnnp.io import write_structures

    data, _, _ = _test_sets(material, dirs)
    data.reference_energies.update(bundled_metadata(f"{material}-A")["reference_energies"])
    target.mkdir(parents=True, exist_ok=True)
    write_structures(target / "test-sets.extxyz", data.structures, format="extxyz")
    models = {label: load_potential(d / "model.json") for label, d in dirs.items()}
    return compare_models(models, data, ["original:subset=original", "scaled:subset=scaled"],
                          target, progress=progress)


def _relaxed_structure(material: str, out: Path) -> Path:
    """The data set's start structure, rebuilt with its own recorded build command."""
    from hdnnp.bundled import bundled_metadata
    from hdnnp.cli import main

    path = out / "scan" / f"{material}-relaxed.xyz"
    if path.is_file():
        return path
    commands = bundled_metadata(f"{material}-A").get("commands", [])
    build = next((c for c in commands if c.startswith("hdnnp build ")), None)
    if build is None:
        raise HdnnpError(f"{material}-A records no build command to rebuild its structure")
    argv = shlex.split(build)[1:]
    if "-o" in argv:
        k = argv.index("-o")
        del argv[k:k + 2]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.xyz")
    if main([*argv, "-o", str(tmp)]) != 0:
        raise HdnnpError(f"rebuilding {material} failed: hdnnp {' '.join(argv)}")
    tmp.replace(path)
    return path


def _scan(material: str, dirs: dict[str, Path], out: Path, settings: ReproduceSettings,
          progress: bool) -> dict:
    from hdnnp.analysis.plots import plot_scaling_scan
    from hdnnp.analysis.scan import energy_per_atom_stats, scaling_scan
    from hdnnp.bundled import bundled_metadata, load_bundled_dataset
    from hdnnp.calculator import Calculator
    from hdnnp.io import read_structures
    from hdnnp.reference_data.calculators import ReferenceSettings, make_calculator

    target = out / "scan" / "scan.json"
    if target.is_file():
        return json.loads(target.read_text())
    atoms = read_structures(_relaxed_structure(material, out))[0]
    factors = np.linspace(-0.1, 0.1, settings.scan_points)
    meta = bundled_metadata(f"{material}-A")
    ref_settings = ReferenceSettings.from_dict(meta["reference_settings"])
    ref_e = meta["reference_energies"]
    curves, reference = {}, None
    for k, (label, d) in enumerate(dirs.items()):
        calc = Calculator(str(d / "model.json"), extrapolation="ignore")
        res = scaling_scan(calc, atoms, factors, reference_calculator=make_calculator(
            ref_settings) if k == 0 else None, reference_energies=ref_e, progress=progress)
        curves[label] = res.energy_per_atom
        if k == 0:
            reference = res.reference_energy_per_atom
    stats = {s: energy_per_atom_stats(load_bundled_dataset(f"{material}-{s}").structures,
                                      ref_e) for s in "AB"}
    plot_scaling_scan(factors, {f"potential {k}": v for k, v in curves.items()},
                      out / "scan" / "scan.png", reference_energy_per_atom=reference,
                      training_max={f"data {s}": st["max"] for s, st in stats.items()},
                      training_mean={f"data {s}": st["mean"] for s, st in stats.items()},
                      reference_label=ref_settings.method, title=material, derivative=True)
    err = {k: float(np.nanmean(np.abs(v - reference)) * 1000) for k, v in curves.items()}
    doc = {"factors": factors.tolist(), "reference_eV_per_atom": reference.tolist(),
           "models_eV_per_atom": {k: v.tolist() for k, v in curves.items()},
           "mae_meV_per_atom": err, "training_stats": stats,
           "reference_settings": ref_settings.to_dict()}
    atomic_write_text(target, json.dumps(doc, indent=1))
    return doc


def _studies(material: str, out: Path, settings: ReproduceSettings, progress: bool) -> dict:
    from hdnnp.studies.presets import preset_spec
    from hdnnp.studies.report import study_rows, write_study_report
    from hdnnp.studies.runner import StudyRunner

    done = {}
    for name in settings.studies:
        spec = preset_spec(name, epochs=settings.study_epochs,
                           seeds=settings.seeds if name == "optimizer-seed" else 1,
                           data=f"bundled:{material}-A")
        runner = StudyRunner(spec, out / "studies" / name)
        runner.run(jobs=settings.jobs, threads=settings.threads, progress=progress)
        write_study_report(runner)
        rows, chosen = study_rows(runner)
        done[name] = {"runner": runner, "rows": rows,
                      "chosen": rows[chosen]["setting"] if chosen is not None else None}
    return done


# ------------------------------------------------------------------------ the report
def _figures_of_training(dirs: dict[str, Path], material: str, out: Path) -> None:
    from hdnnp.analysis.plots import plot_energy_distribution, plot_loss_comparison
    from hdnnp.bundled import bundled_metadata, load_bundled_dataset

    fig = out / "figures"
    fig.mkdir(parents=True, exist_ok=True)
    plot_loss_comparison({f"potential {k}": d / "log.jsonl" for k, d in dirs.items()},
                         fig / "loss_A_vs_B.png", metric="mae", target=5.0,
                         title=f"{material}: validation energy MAE")
    ref_e = bundled_metadata(f"{material}-A")["reference_energies"]
    plot_energy_distribution(
        {f"data {s}": load_bundled_dataset(f"{material}-{s}").cohesive_energies(ref_e)
         for s in "AB"}, fig / "energy_distribution.png", density=True)


def _summary(material: str, metrics: dict, scan: dict, studies: dict, dirs, wall: float,
             settings: ReproduceSettings) -> dict:
    out = {"material": material, "wall_s": round(wall, 1), "settings": settings.to_dict()}
    for label in "AB":
        for sub in ("original", "scaled"):
            m = metrics[label][sub]
            pre = f"model_{label}_{sub}"
            out[f"{pre}_mae_meV_per_atom"] = m.get("energy_mae_meV_per_atom")
            out[f"{pre}_rmse_meV_per_atom"] = m.get("energy_rmse_meV_per_atom")
            out[f"{pre}_energy_pearson_r"] = m.get("energy_pearson_r")
            out[f"{pre}_force_rmse_eV_per_A"] = m.get("force_rmse_eV_per_A")
            out[f"{pre}_force_pearson_r"] = m.get("force_pearson_r")
            out[f"n_{sub}_test"] = m.get("n_structures")
        run = json.loads((dirs[label] / "metrics.json").read_text())
        out[f"model_{label}_test_mae_meV_per_atom"] = run.get("test_energy_mae_meV_per_atom")
        out[f"model_{label}_scan_mae_meV_per_atom"] = scan["mae_meV_per_atom"].get(label)
    for name, st in studies.items():
        out[f"study_{name}_chosen"] = st["chosen"]
        for row in st["rows"]:  # e.g. study_augmentation_0.25_test_mean (meV/atom)
            value = row["setting"].split("=", 1)[-1]
            for which in ("validation", "test"):
                out[f"study_{name}_{value}_{which}_mean"] = row[f"{which} mean"]
    return out


def _command(material: str, out: Path, st: dict) -> str:
    """The command line that makes this report (the settings as flags)."""
    parts = ["hdnnp", "reproduce", material, "-o", str(out), "--epochs", str(st["epochs"]),
             "--study-epochs", str(st["study_epochs"]), "--seeds", str(st["seeds"]),
             "--jobs", str(st["jobs"]), "--studies", *st["studies"]]
    if st.get("n_structures"):
        parts += ["--n-structures", str(st["n_structures"])]
    return shlex.join(parts)


def _write_report(material: str, out: Path, summary: dict, dirs, studies: dict) -> Path:
    from hdnnp.analysis.html import HtmlPage

    page = HtmlPage(f"hdnnp reproduce {material}: data sets A and B (thesis ch. 5)")
    page.paragraph(f"Potentials trained on {material}-A (MD only) and {material}-B (80 % "
                   "scaled ±10 %, 20 % MD), each split 80/10/10 (the validation set chooses "
                   "the kept epoch); compared on original (MD) and scaled test structures "
                   f"neither saw. Wall time {summary['wall_s']:.0f} s.")
    page.command(_command(material, out, summary["settings"]))
    page.heading("The thesis's numbers beside ours")
    rows = []
    for what, thesis, key in THESIS.get(material, []):
        ours = summary.get(key) if key else None
        rows.append({"quantity": what, "thesis": thesis,
                     "hdnnp": "—" if ours is None else f"{ours:.3g}"})
    rows.append({"quantity": "potential A on scaled structures, energy MAE (meV/atom)",
                 "thesis": "fails away from f = 0 (fig. 5.10)",
                 "hdnnp": f"{summary['model_A_scaled_mae_meV_per_atom']:.3g}"})
    rows.append({"quantity": "potential B on scaled structures, energy MAE (meV/atom)",
                 "thesis": "follows the curve up to the data's maximum (fig. 5.10)",
                 "hdnnp": f"{summary['model_B_scaled_mae_meV_per_atom']:.3g}"})
    page.table(rows)
    page.heading("A and B on original and scaled test structures")
    table = []
    for label in "AB":
        for sub in ("original", "scaled"):
            pre = f"model_{label}_{sub}"
            table.append({"potential": label, "test structures": sub,
                          "N": summary[f"n_{sub}_test"],
                          "energy MAE (meV/atom)": summary[f"{pre}_mae_meV_per_atom"],
                          "energy RMSE": summary[f"{pre}_rmse_meV_per_atom"],
                          "energy r": summary[f"{pre}_energy_pearson_r"],
                          "force RMSE (eV/Å)": summary[f"{pre}_force_rmse_eV_per_A"],
                          "force r": summary[f"{pre}_force_pearson_r"]})
    page.table(table)
    cmp_cmd = (f"hdnnp compare A={dirs['A']}/model.json B={dirs['B']}/model.json --data "
               f"{out}/compare/test-sets.extxyz --subset original:subset=original "
               "--subset scaled:subset=scaled")
    fig = out / "figures"
    page.figure(fig / "loss_A_vs_B.png", "validation energy MAE per epoch, A vs B; dotted: "
                "the thesis's 5 meV/atom target",
                command=f"hdnnp study (two runs: data.train = {material}-A, {material}-B)")
    for label in "AB":
        page.figure(out / "compare" / f"energy_parity_{label}.png",
                    f"potential {label}: energies, original and scaled (Pearson r in the "
                    "panel)", command=cmp_cmd)
        page.figure(out / "compare" / f"force_parity_{label}.png",
                    f"potential {label}: force components", command=cmp_cmd)
    page.figure(out / "compare" / "energy_error_hist.png", "squared energy errors, "
                "fraction of each set per bin (normalised: sets of different size "
                "compare; thesis fig. 5.12)", command=cmp_cmd)
    page.figure(out / "compare" / "force_error_hist.png", "squared force-component errors",
                command=cmp_cmd)
    page.figure(fig / "energy_distribution.png", "cohesive energies per atom of data sets "
                "A and B (density)")
    page.heading("Scaling scan")
    page.figure(out / "scan" / "scan.png", "cohesive energy per atom of the relaxed "
                "structure scaled by 1 + f: reference (the labels' method and settings), "
                "A and B; lines: maximum and mean of data sets A and B; right: the slope "
                "dE/df (thesis figs. 5.10, 5.16)",
                command=f"hdnnp scan A={dirs['A']}/model.json B={dirs['B']}/model.json "
                        f"{out}/scan/{material}-relaxed.xyz --data bundled:{material}-A "
                        "--reference data", wide=True)
    for name, st in studies.items():
        page.heading(f"Study: {name}")
        runner = st["runner"]
        page.paragraph(f"Chosen on the validation set: {st['chosen']}. Full report: "
                       f"{runner.directory / 'report.html'}")
        page.table(st["rows"])
        page.figure(runner.directory / "loss_curves.png", "validation error per epoch",
                    command=f"hdnnp study --preset {name} --data bundled:{material}-A "
                            f"--epochs {runner.spec.base['training']['epochs']}")
        key = next(iter(runner.spec.vary)).split(".")[-1]
        page.figure(runner.directory / f"error_vs_{key}_validation.png",
                    "final validation error, mean ± std over seeds")
        page.figure(runner.directory / f"error_vs_{key}_test.png", "final test error")
    return page.write(out / "report.html")


def reproduce(material: str, out_dir: str | Path,
              settings: ReproduceSettings | None = None, progress: bool = True) -> dict:
    """Run (or resume) the reproduction of ``material``; returns the summary."""
    settings = settings or ReproduceSettings()
    _check_material(material)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    clock = out / "wall_s.json"  # wall time accumulated over interrupted and resumed attempts
    before = json.loads(clock.read_text())["wall_s"] if clock.is_file() else 0.0
    try:
        _, dirs = _train(material, out, settings, progress)
        metrics = _compare(material, dirs, out, progress)
        scan = _scan(material, dirs, out, settings, progress)
        studies = _studies(material, out, settings, progress)
        _figures_of_training(dirs, material, out)
    finally:  # an attempt that fails or is interrupted still counts
        wall = before + time.perf_counter() - t0
        atomic_write_text(clock, json.dumps({"wall_s": wall}))
    summary = _summary(material, metrics, scan, studies, dirs, wall, settings)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
    summary["report"] = str(_write_report(material, out, summary, dirs, studies))
    return summary
