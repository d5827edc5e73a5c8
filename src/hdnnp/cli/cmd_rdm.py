"""``hdnnp rdm``: 1-RDMs of exactly solvable 1D two-electron systems (generate, pca,
train, report); atomic units (Hartree, bohr)."""

from __future__ import annotations

import json
import textwrap

from hdnnp.cli import command_parser

_DESCRIPTION = (
    "One-body reduced density matrices (1-RDMs) of two electrons of opposite spin in 1D "
    "with the softened Coulomb interaction 1/(|x-x'|+1), in random external potentials "
    "(Wetherell, Costamagna, Gatti, Reining, Faraday Discuss. 224, 265 (2020)). Atomic "
    "units throughout. 'generate' solves the systems exactly into one HDF5 file, 'pca' "
    "finds how many principal components reach float precision, 'train' fits "
    "autoencoders and density-to-1-RDM models, 'report' writes the HTML report of a "
    "training run. See docs/rdm.md.")

_EXAMPLES = """\
  hdnnp rdm generate -o rdm.h5 --systems 50000 --workers 2
  hdnnp rdm pca rdm.h5 -o pca
  hdnnp rdm train rdm.h5 --model conv-autoencoder -o runs/conv-ae
  hdnnp rdm train rdm.h5 --model physics --epochs 300 -o runs/physics
  hdnnp rdm report runs/physics
"""

_GEN_EXAMPLES = """\
  # the paper's data set: 50,000 systems, 62-point grid on [-15, 15] bohr
  hdnnp rdm generate -o rdm.h5 --systems 50000 --workers 2
  # interrupted? the same command again completes the missing chunks only
  hdnnp rdm generate -o rdm.h5 --systems 50000 --workers 2
  # a grid-convergence check: finer grid, 5-point stencil, other seed
  hdnnp rdm generate -o fine.h5 --systems 100 --points 121 --stencil 5 --seed 7
"""

_PCA_EXAMPLES = """\
  hdnnp rdm pca rdm.h5 -o pca
  # float64-level tolerance and only the first 10,000 systems
  hdnnp rdm pca rdm.h5 -o pca --tolerance 1e-15 --limit 10000
"""

MODELS = ("dense-autoencoder", "conv-autoencoder", "raw", "pca", "physics", "uhf-pca")

_TRAIN_EXAMPLES = """\
  # convolutional autoencoder of the 1-RDM, 62-dimensional latent space
  hdnnp rdm train rdm.h5 --model conv-autoencoder --latent 62 -o runs/conv-ae
  # density -> 1-RDM: raw MLP, PCA features, physics-informed (hermitian, PSD,
  # trace 2, diag = n by construction), and a correction to the UHF 1-RDM learned
  # from its PCA features
  hdnnp rdm train rdm.h5 --model raw -o runs/raw
  hdnnp rdm train rdm.h5 --model pca --components 62 -o runs/pca
  hdnnp rdm train rdm.h5 --model physics -o runs/physics
  hdnnp rdm train rdm.h5 --model uhf-pca -o runs/uhf
  # continue an interrupted run (or extend it to more epochs)
  hdnnp rdm train rdm.h5 --model physics -o runs/physics --resume --epochs 600
models: dense-autoencoder, conv-autoencoder, raw, pca, physics, uhf-pca
"""

_REPORT_EXAMPLES = """\
  hdnnp rdm report runs/physics
  hdnnp rdm report runs/physics -o physics-report.html
"""


def register(sub) -> None:
    p = command_parser(sub, "rdm", help="1-RDMs of 1D two-electron systems (second seed paper)",
                       description=textwrap.fill(_DESCRIPTION, 88), examples=_EXAMPLES)
    rsub = p.add_subparsers(dest="rdm_command", metavar="SUBCOMMAND")

    def dispatch(args) -> int:
        if getattr(args, "rdm_func", None) is None:
            p.print_help()
            return 1
        return args.rdm_func(args)

    p.set_defaults(func=dispatch)

    g = command_parser(rsub, "generate", help="solve random systems exactly into one file",
                       description=textwrap.fill(
                           "Solve the two-electron singlet ground state (sparse "
                           "Hamiltonian in the symmetric subspace, Lanczos) for random "
                           "potentials V(x) = D x^10 + F sum_n [a_n cos(n pi x/L) + b_n "
                           "sin(n pi x/L)], a_n, b_n ~ U[-10, 10] seeded per system from "
                           "(seed, index), and write densities, 1-RDMs, occupations and "
                           "energies into one compressed HDF5 file with provenance. "
                           "Resumable: finished chunks are kept in OUTPUT.parts/; the "
                           "final file appears atomically.", 88),
                       examples=_GEN_EXAMPLES)
    g.add_argument("-o", "--output", required=True, metavar="FILE.h5", help="data set file")
    g.add_argument("--systems", type=int, default=50_000, help="number of systems "
                   "(default 50000, the paper's)")
    g.add_argument("--seed", type=int, default=0, help="data-set seed (default 0)")
    g.add_argument("--points", type=int, default=62, help="grid points (default 62)")
    g.add_argument("--half-width", type=float, default=15.0, metavar="L",
                   help="grid on [-L, L] bohr (default 15)")
    g.add_argument("--stencil", type=int, default=7, choices=(3, 5, 7),
                   help="finite-difference points of the kinetic operator (default 7)")
    g.add_argument("--interaction", type=float, default=1.0,
                   help="strength of 1/(|x-x'|+1) (default 1; 0: non-interacting)")
    g.add_argument("--chunk-size", type=int, default=500, help="systems per resumable "
                   "chunk (default 500)")
    g.add_argument("--workers", default="1", metavar="N|auto",
                   help="worker processes (default 1; auto: one per CPU)")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.set_defaults(rdm_func=run_generate)

    c = command_parser(rsub, "pca", help="principal components of densities and 1-RDMs",
                       description=textwrap.fill(
                           "Principal component analysis of the densities and of the "
                           "1-RDMs (upper triangle incl. diagonal, off-diagonal entries "
                           "weighted sqrt(2) so that Euclidean norms equal Frobenius "
                           "norms of the full matrix). Writes pca.json, pca.md and "
                           "explained_variance.png: the number of components whose "
                           "residual variance fraction 1 - sum_k<=K l_k / sum l is at "
                           "most TOLERANCE (default float32 epsilon, 2^-23).", 88),
                       examples=_PCA_EXAMPLES)
    c.add_argument("data", metavar="FILE.h5")
    c.add_argument("-o", "--output", required=True, metavar="DIR")
    c.add_argument("--tolerance", type=float, action="append", metavar="EPS",
                   help="residual variance fraction (repeatable; default 2^-23)")
    c.add_argument("--limit", type=int, help="use the first N systems only")
    c.set_defaults(rdm_func=run_pca)

    t = command_parser(rsub, "train", help="autoencoders and density-to-1-RDM models",
                       description=textwrap.fill(
                           "Train one model on a data set split into training, "
                           "validation and test systems (seeded). The validation MAE of "
                           "the 1-RDM chooses the epoch; the test set is evaluated once, "
                           "at the end: 1-RDM MAE (a.u.), kinetic-energy relative error, "
                           "occupation errors. The run directory holds config.json, "
                           "log.jsonl, checkpoint.pt (every epoch, atomic), best.pt, "
                           "model.json, metrics.json and report.html; --resume "
                           "continues from the checkpoint.", 88),
                       examples=_TRAIN_EXAMPLES)
    t.add_argument("data", metavar="FILE.h5")
    t.add_argument("-o", "--output", required=True, metavar="DIR", help="run directory")
    t.add_argument("--model", required=True, choices=MODELS)
    t.add_argument("--epochs", type=int, default=200)
    t.add_argument("--time-limit", type=float, metavar="SECONDS",
                   help="stop after the epoch that passes this training time")
    t.add_argument("--batch-size", type=int, default=128)
    t.add_argument("--learning-rate", type=float, default=1e-3)
    t.add_argument("--loss", choices=("mse", "mae"), default="mse",
                   help="squared (default) or absolute error of the 1-RDM entries")
    t.add_argument("--hidden", type=int, nargs="+", default=None, metavar="H",
                   help="hidden layer widths (default per model)")
    t.add_argument("--latent", type=int, default=62, help="autoencoder latent size "
                   "(default 62)")
    t.add_argument("--components", type=int, default=62, help="PCA components of the "
                   "1-RDM for --model pca/uhf-pca (default 62)")
    t.add_argument("--orbitals", type=int, default=12, help="rank of the physics model's "
                   "1-RDM (default 12)")
    t.add_argument("--limit", type=int, help="use the first N systems only")
    t.add_argument("--split", type=float, nargs=3, default=(0.8, 0.1, 0.1),
                   metavar=("TRAIN", "VAL", "TEST"), help="fractions (default 0.8 0.1 0.1)")
    t.add_argument("--seed", type=int, default=0, help="split and initialisation seed")
    t.add_argument("--device", default="auto", help="auto, cpu or cuda")
    t.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    t.add_argument("--resume", action="store_true", help="continue from checkpoint.pt")
    t.add_argument("--no-report", action="store_true", help="skip report.html")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(rdm_func=run_train)

    r = command_parser(rsub, "report", help="HTML report of a training run",
                       description="Write the self-contained HTML report of a finished "
                       "'hdnnp rdm train' run: metrics, learning curves, 1-RDM maps true "
                       "vs predicted, occupation spectra.", examples=_REPORT_EXAMPLES)
    r.add_argument("run_dir", metavar="DIR")
    r.add_argument("-o", "--output", metavar="FILE.html", help="default DIR/report.html")
    r.set_defaults(rdm_func=run_report)


def run_generate(args) -> int:
    from hdnnp.errors import HdnnpError
    from hdnnp.rdm.generate import GenerationSettings, default_workers, generate_dataset

    if args.workers == "auto":
        workers = default_workers()
    else:
        try:
            workers = int(args.workers)
        except ValueError:
            raise HdnnpError(f"--workers expects an integer or 'auto', got "
                             f"{args.workers!r}") from None
    settings = GenerationSettings(n_systems=args.systems, seed=args.seed, points=args.points,
                                  half_width=args.half_width, stencil=args.stencil,
                                  interaction=args.interaction, chunk_size=args.chunk_size)
    prov = generate_dataset(args.output, settings, workers=workers, progress=not args.quiet)
    t = prov["timings"]
    print(f"{args.output}: {settings.n_systems} systems, {t['chunk_cpu_s_total']:.1f} CPU s "
          f"in chunks, {t['this_run_wall_s']:.1f} s wall this run ({workers} worker(s))")
    return 0


def run_pca(args) -> int:
    from hdnnp.rdm.pca import run_pca_analysis

    tol = args.tolerance or [2.0**-23]
    summary = run_pca_analysis(args.data, args.output, tolerances=tol, limit=args.limit)
    print(json.dumps(summary["components"], indent=1))
    return 0


def run_train(args) -> int:
    import torch

    from hdnnp.rdm.train import RdmTrainConfig, train_rdm_model

    torch.set_num_threads(max(1, args.threads))
    cfg = RdmTrainConfig(model=args.model, epochs=args.epochs, batch_size=args.batch_size,
                         learning_rate=args.learning_rate, loss=args.loss,
                         hidden=tuple(args.hidden) if args.hidden else None,
                         latent=args.latent, components=args.components,
                         orbitals=args.orbitals, limit=args.limit, split=tuple(args.split),
                         seed=args.seed, device=args.device, time_limit_s=args.time_limit)
    metrics = train_rdm_model(args.data, args.output, cfg, resume=args.resume,
                              progress=not args.quiet, report=not args.no_report)
    print(json.dumps(metrics.get("test", metrics), indent=1))
    return 130 if metrics.get("stop_reason") == "interrupted" else 0


def run_report(args) -> int:
    from hdnnp.rdm.report import write_run_report

    path = write_run_report(args.run_dir, args.output)
    print(path)
    return 0
