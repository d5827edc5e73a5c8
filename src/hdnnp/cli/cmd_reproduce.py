"""``hdnnp reproduce``: the thesis's A-vs-B experiment and studies on a bundled material."""

from __future__ import annotations

import textwrap

from hdnnp.cli import command_parser

_DESCRIPTION = (
    "On the bundled data sets MATERIAL-A (MD only) and MATERIAL-B (80 % scaled ±10 %, "
    "20 % MD): train potentials A and B, compare them on original and scaled test "
    "structures neither saw (parity plots with Pearson r, normalised squared-error "
    "histograms), scan the relaxed structure's scaling with the reference method at the "
    "labels' own settings (training max/mean lines, dE/df), run the optimizer × seed, "
    "cutoff and augmented-fraction (25-100 % scaled) studies on set A, and write one "
    "HTML report (figures embedded, the commands, the thesis's numbers beside ours) and "
    "summary.json. Every step is resumable: "
    "rerunning the command continues where it stopped. The default settings run in "
    "about 15-30 minutes on two cores for one material.")

_EXAMPLES = """\
  hdnnp reproduce graphene -o reproduce/graphene
  hdnnp reproduce graphene -o /tmp/quick --epochs 20 --study-epochs 5 --seeds 1
  hdnnp reproduce --all -o reproduce
  hdnnp reproduce hbn -o reproduce/hbn --jobs 2 --studies cutoff
"""


def register(sub) -> None:
    p = command_parser(sub, "reproduce", help="the thesis's chapter-5 experiment as a report",
                       description=textwrap.fill(_DESCRIPTION, 88), examples=_EXAMPLES)
    p.add_argument("material", nargs="?", help="material with bundled sets A and B "
                   "(graphene, hbn, cbn, silica-bilayer, quartz, rutile)")
    p.add_argument("--all", action="store_true", help="every material with sets A and B")
    p.add_argument("-o", "--output", required=True, metavar="DIR",
                   help="output directory (with --all: one subdirectory per material)")
    p.add_argument("--epochs", type=int, default=300, help="epochs of A and B (default 300)")
    p.add_argument("--study-epochs", type=int, default=40,
                   help="epochs of each study run (default 40)")
    p.add_argument("--seeds", type=int, default=3, help="seeds of the optimizer study (3)")
    p.add_argument("--studies", nargs="*", default=["optimizer-seed", "cutoff", "augmentation"],
                   metavar="PRESET", help="studies on set A (default: optimizer-seed cutoff "
                   "augmentation)")
    p.add_argument("--n-structures", type=int, metavar="N",
                   help="draw N structures of each set (default: all)")
    p.add_argument("--jobs", type=int, default=2, help="training runs at a time (2)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from hdnnp.bundled import list_bundled_datasets
    from hdnnp.errors import HdnnpError
    from hdnnp.reproduce.pipeline import ReproduceSettings, reproduce

    if bool(args.material) == bool(args.all):
        raise HdnnpError("give one MATERIAL or --all")
    names = list_bundled_datasets()
    materials = ([n[:-2] for n in names if n.endswith("-A") and n[:-2] + "-B" in names]
                 if args.all else [args.material])
    settings = ReproduceSettings(epochs=args.epochs, study_epochs=args.study_epochs,
                                 seeds=args.seeds, jobs=args.jobs,
                                 n_structures=args.n_structures, studies=args.studies)
    for material in materials:
        out = Path(args.output) / material if args.all else Path(args.output)
        print(f"reproducing {material} in {out}")
        summary = reproduce(material, out, settings, progress=not args.quiet)
        for key in ("model_A_original_mae_meV_per_atom", "model_B_original_mae_meV_per_atom",
                    "model_A_scaled_mae_meV_per_atom", "model_B_scaled_mae_meV_per_atom"):
            print(f"  {key}: {summary[key]:.3f}")
        print(f"  wall: {summary['wall_s']:.0f} s; report: {summary['report']}")
    return 0
