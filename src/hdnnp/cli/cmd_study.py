"""``hdnnp study``: a sweep of training runs over any parameter, and its report."""

from __future__ import annotations

import shlex
import sys
import textwrap

from hdnnp.cli import command_parser

_DESCRIPTION = (
    "Train one potential per setting of the varied parameters (and per seed), JOBS "
    "at a time, each in its own process with THREADS threads, then write one report "
    "into the study directory: report.html (figures embedded), summary.json, "
    "loss_curves.png and error_vs_<key>_{validation,test}.png. The validation error "
    "chooses the setting; the test error is reported beside it. A study is resumable: "
    "rerunning the same command skips finished runs, resumes interrupted ones from "
    "their checkpoints and retries failed ones. Give a study file (YAML: name, base, "
    "vary, combine, seeds, set, metric, target), a --preset, or --config with --vary.")

_EXAMPLES = """\
  hdnnp study --preset cutoff -o studies/cutoff --jobs 2
  hdnnp study --preset optimizer-seed --seeds 5 -o studies/optimizers
  hdnnp study --preset h2-toy -o studies/h2
  hdnnp study -c examples/graphene-A.yaml --vary cutoff=4,5,6,7 --set epochs=100 -o studies/rc
  hdnnp study -c examples/graphene-A.yaml --vary optimizer=adam,lbfgs --seeds 3 -o studies/opt
  hdnnp study -c base.yaml --vary hidden=5,10-10,20-20 --vary activation=tanh,softplus
  hdnnp study my-study.yaml -o studies/mine --scheduler tcp://head:8786
  hdnnp study --preset cutoff -o studies/cutoff --report-only
presets: cutoff, n-functions, eta-range, n-radial, train-size, optimizer-seed,
  activation, capacity, interval, augmentation, h2-toy (thesis §3.4, §4.1.2, fig. 4.10;
  see docs/studies.md)
"""


def register(sub) -> None:
    p = command_parser(sub, "study", help="convergence studies: sweep training parameters",
                       description=textwrap.fill(_DESCRIPTION, 88), examples=_EXAMPLES)
    p.add_argument("spec", nargs="?", metavar="STUDY.yaml", help="study file")
    p.add_argument("--preset", help="a thesis study (see the list below)")
    p.add_argument("-c", "--config", help="base training configuration (with --vary)")
    p.add_argument("--vary", action="append", default=[], metavar="KEY=V1,V2,...",
                   help="a varied key and its values (repeatable: every combination)")
    p.add_argument("--zip", action="store_true",
                   help="pair the values of several --vary element-wise, not every "
                        "combination")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a fixed override for every run (repeatable)")
    p.add_argument("--seeds", type=int, metavar="N", help="repetitions with training seeds "
                   "1..N (default: the study's)")
    p.add_argument("--epochs", type=int, help="epochs of every run (presets' default: 60)")
    p.add_argument("--data", metavar="SOURCE", help="a preset's training data instead of "
                   "bundled:graphene-A (e.g. bundled:hbn-A)")
    p.add_argument("--metric", help="metrics key that ranks the settings (default "
                   "energy_mae_meV_per_atom)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="study directory")
    p.add_argument("--jobs", type=int, default=1, help="runs at a time (default 1)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads of each run (default 1)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="dask scheduler: run the trainings as tasks on its workers")
    p.add_argument("--report-only", action="store_true",
                   help="write the report of the runs finished so far, train nothing")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _pairs(items, flag: str) -> list[tuple[str, str]]:
    from hdnnp.errors import HdnnpError

    out = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise HdnnpError(f"{flag} expects KEY=VALUE, got {item!r}")
        out.append((key.strip(), value.strip()))
    return out


def _spec_from_args(args, directory):
    from pathlib import Path

    from hdnnp.errors import HdnnpError
    from hdnnp.studies.presets import preset_spec
    from hdnnp.studies.spec import StudySpec, load_study, parse_value

    if args.data and not args.preset:
        raise HdnnpError("--data replaces a preset's data; a study file or --config names "
                         "its own (vary or --set data.train)")
    sources = [x for x in (args.spec, args.preset, args.config) if x]
    if len(sources) != 1:
        raise HdnnpError("give one of: a study file, --preset NAME, or --config FILE with "
                         "--vary")
    base_dir = None
    if args.spec:
        spec = load_study(args.spec)
        base_dir = Path(args.spec).resolve().parent
    elif args.preset:
        spec = preset_spec(args.preset, args.epochs, args.seeds, directory, data=args.data)
    else:
        if not args.vary:
            raise HdnnpError("--config needs at least one --vary KEY=V1,V2,...")
        spec = StudySpec(name=Path(args.config).stem, base=str(Path(args.config)),
                         vary={k: [parse_value(v) for v in vals.split(",")]
                               for k, vals in _pairs(args.vary, "--vary")})
    update: dict = {}
    if args.vary and (args.spec or args.preset):
        update["vary"] = {k: [parse_value(v) for v in vals.split(",")]
                          for k, vals in _pairs(args.vary, "--vary")}
        update["names"] = {}
    if args.zip:
        update["combine"] = "zip"
    fixed = dict(spec.set)
    fixed.update({k: parse_value(v) for k, v in _pairs(args.set, "--set")})
    if args.epochs is not None and not args.preset:
        fixed["training.epochs"] = args.epochs
    if fixed != spec.set:
        update["set"] = fixed
    if args.seeds is not None:
        update["seeds"] = args.seeds
    if args.metric:
        update["metric"] = args.metric
    if update:
        spec = StudySpec.model_validate({**spec.model_dump(), **update})
    return spec, base_dir


def run(args) -> int:
    from pathlib import Path

    from hdnnp.studies.report import write_study_report
    from hdnnp.studies.runner import StudyRunner

    directory = Path(args.output)
    spec, base_dir = _spec_from_args(args, directory)
    extra = None
    if args.preset == "h2-toy" and not args.report_only:
        from hdnnp.studies.h2 import prepare_h2_data

        print(f"H2 dimer data (GFN1-xTB) in {directory / 'data'}")
        prepare_h2_data(directory / "data")
    runner = StudyRunner(spec, directory, base_dir)
    print(f"study {spec.name!r}: {len(runner.runs)} runs in {directory}/runs "
          f"({args.jobs} at a time, {args.threads} thread(s) each)")
    failed = {}
    if not args.report_only:
        results = runner.run(jobs=args.jobs, threads=args.threads, scheduler=args.scheduler,
                             progress=not args.quiet)
        failed = {k: v for k, v in results.items() if v != "done"}
        for name, why in failed.items():
            print(f"run {name}: {why}", file=sys.stderr)
    if args.preset == "h2-toy":
        from hdnnp.studies.h2 import h2_curve_figure

        extra = h2_curve_figure(runner, directory / "data")
    command = "hdnnp " + " ".join(shlex.quote(a) for a in sys.argv[1:]) \
        if sys.argv and sys.argv[0].endswith("hdnnp") else None
    html = write_study_report(runner, command=command,
                              extra_figures=[(extra[0], "energy against H–H distance: "
                                              "reference and every network; shaded: the "
                                              "training range")] if extra else None)
    print(f"report: {html}")
    return 1 if failed else 0
