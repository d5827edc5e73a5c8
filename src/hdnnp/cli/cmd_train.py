"""``hdnnp train``: fit a potential from a configuration file and/or flags."""

from __future__ import annotations

import argparse
import json

from hdnnp.cli import command_parser
from hdnnp.errors import HdnnpError

EXAMPLES = """\
  # everything from a YAML/TOML/JSON file
  hdnnp train --config train.yaml
  # every configuration key with its type, range, default and meaning
  hdnnp train --help-config
  # flags only: ænet's TiO2 setup, energies and forces, 80/10/10 split
  hdnnp train TiO2-xsf.tar.gz --reference-energies O=-432.503149303,Ti=-1604.604515075 \\
      --max-energy-above-min 1.0 --n-structures 1000 --descriptor chebyshev \\
      --radial 8.0 16 --angular 6.5 4 --hidden 15 15 --activation tanh \\
      --optimizer adam --epochs 300 --force-weight 0.1 --output runs/tio2
  # a bundled data set with the default descriptor for a 6 Å cutoff
  hdnnp train bundled:graphene-A --descriptor behler --cutoff 6.0 --size 8 -o runs/graphene
  # ænet's online steepest descent: one structure per step, gamma 0.5, alpha 0.5
  hdnnp train data.extxyz --optimizer sgd --batch-size 1 --learning-rate 0.5 --momentum 0.5
  # a committee of 4 members (seeds 1-4), two trained at a time, one thread each
  hdnnp train bundled:graphene-A --committee 4 --jobs 2 -o runs/graphene-committee
  # a chain: Adam with a cosine schedule, then Levenberg-Marquardt from the best model
  hdnnp train bundled:graphene-A --stage adam:200:learning_rate=5e-3,learning_rate_final=1e-5 \
      --stage lm:20 -o runs/graphene-chain
  # continue an interrupted run, extend a finished one (its last stage runs 900 epochs
  # in all), or append a stage to it
  hdnnp train --resume runs/tio2
  hdnnp train --resume runs/tio2 --epochs 900
  hdnnp train --resume runs/tio2 --stage lm:30:lm_mu=0.1
"""


def _rate_or_none(text: str) -> float | str:
    """A learning rate, or ``"none"`` (no schedule: a constant rate)."""
    if text.strip().lower() in ("none", "null", "constant"):
        return "none"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or none, got {text!r}") from None


def register(sub) -> None:
    p = command_parser(sub, "train", help="train a potential",
                       description="Train a high-dimensional neural network potential on "
                       "energies and forces. Flags override values from --config; both are "
                       "checked against one schema (see --help-config for every key).",
                       examples=EXAMPLES)
    p.add_argument("data", nargs="*", help="training structure files/dirs/archives or "
                   "bundled:NAME")
    p.add_argument("-c", "--config", help="YAML/TOML/JSON configuration file")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR")
    p.add_argument("--help-config", action="store_true", help="list every configuration key "
                   "(type, default, meaning) and exit")
    p.add_argument("-o", "--output", help="run directory")
    g = p.add_argument_group("data")
    g.add_argument("--test-data", nargs="+", help="separate test structures")
    g.add_argument("--format", help="structure file format (default: from the name)")
    g.add_argument("--length-unit", help="length unit of n2p2 input.data files (e.g. bohr)")
    g.add_argument("--energy-unit", help="energy unit of n2p2 input.data files (e.g. hartree)")
    g.add_argument("--reference-energies", help="isolated-atom energies, e.g. O=-432.5,Ti=-1604.6"
                   " (eV)")
    g.add_argument("--max-energy-above-min", type=float, help="drop structures more than this "
                   "many eV/atom above the lowest")
    g.add_argument("--max-energy-per-atom", type=float, help="drop structures with cohesive "
                   "energy above this (eV/atom)")
    g.add_argument("--n-structures", type=int, help="draw this many structures (seeded)")
    g.add_argument("--validation-data", nargs="+", help="separate validation structures")
    g.add_argument("--validation-fraction", type=float, help="fraction held out for "
                   "validation: best model, early stopping (default 0.1)")
    g.add_argument("--test-fraction", type=float, help="fraction held out for the test, "
                   "evaluated once at the end (default 0.1)")
    g.add_argument("--data-seed", type=int, help="seed of sampling and split")
    g = p.add_argument_group("descriptor")
    g.add_argument("--descriptor", choices=["chebyshev", "behler"], help="descriptor kind")
    g.add_argument("--cutoff", type=float, help="cutoff (Å) for a default descriptor")
    g.add_argument("--size", type=int, help="size parameter of the default descriptor")
    g.add_argument("--radial", nargs=2, metavar=("RC", "ORDER"), help="Chebyshev radial cutoff/"
                   "order")
    g.add_argument("--angular", nargs=2, metavar=("RC", "ORDER"), help="Chebyshev angular "
                   "cutoff/order")
    g = p.add_argument_group("network")
    g.add_argument("--hidden", type=int, nargs="+", help="hidden layer widths, e.g. 15 15")
    g.add_argument("--activation", nargs="+", help="activation(s): linear tanh sigmoid mtanh "
                   "twist ...")
    g = p.add_argument_group("optimisation")
    g.add_argument("--optimizer", choices=["adam", "lbfgs", "sgd", "lm", "kalman"],
                   help="adam, lbfgs, sgd (with --batch-size 1: ænet's online_sd), lm "
                   "(Levenberg-Marquardt), kalman (n2p2's Kalman filter); their settings: "
                   "--help-config")
    g.add_argument("--epochs", type=int, help="epochs of the optimizer; with --resume: the "
                   "last stage's epochs in all (its cosine learning-rate schedule then spans "
                   "the new total; --learning-rate-final none keeps a constant rate)")
    g.add_argument("--stage", action="append", metavar="OPT:EPOCHS[:KEY=VALUE,...]",
                   help="a stage of a chain, repeatable (e.g. --stage adam:300 --stage lm:20; "
                   "settings as in training.stages); with --resume: appended to the run's "
                   "chain")
    g.add_argument("--batch-size", type=int)
    g.add_argument("--learning-rate", type=float)
    g.add_argument("--learning-rate-final", type=_rate_or_none, metavar="RATE|none",
                   help="end of the cosine schedule (default 1e-5); none: a constant rate")
    g.add_argument("--momentum", type=float, help="momentum of sgd (ænet online_sd: alpha; "
                   "--learning-rate is its gamma)")
    g.add_argument("--weight-decay", type=float, help="L2 weight decay (adam, sgd)")
    g.add_argument("--force-weight", type=float, help="weight of the force term (0: energies "
                   "only)")
    g.add_argument("--force-fraction", type=float, help="fraction of structures trained on "
                   "forces")
    g.add_argument("--refine-epochs", type=int, help="full-batch L-BFGS epochs after the "
                   "main optimiser's epochs")
    g.add_argument("--init-model", help="start from this potential's weights")
    g.add_argument("--patience", type=int, help="early stopping patience (epochs)")
    g.add_argument("--seed", type=int, help="seed of weights and mini-batches")
    g.add_argument("--device", help="auto, cpu, cuda, ...")
    g.add_argument("--threads", type=int, help="CPU threads")
    g.add_argument("--max-time", type=float, help="stop after this many seconds")
    g.add_argument("--dtype", choices=["float64", "float32"])
    g.add_argument("--committee", type=int, metavar="K",
                   help="train K members (seeds seed..seed+K-1) saved as one committee "
                   "potential (mean energy, spread as uncertainty)")
    g.add_argument("--jobs", type=int, help="committee members trained at once, each in its "
                   "own process")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _parse_refs(text: str) -> dict[str, float]:
    out = {}
    for item in text.split(","):
        if not item.strip():
            continue
        try:
            k, v = item.split("=")
            out[k.strip()] = float(v)
        except ValueError:
            raise HdnnpError(f"cannot read reference energy {item!r}; use e.g. O=-432.5") \
                from None
    return out


def config_from_args(args) -> dict:
    from hdnnp.training.config import TrainConfig, load_config

    cfg = load_config(args.config).to_dict() if args.config else TrainConfig().to_dict()
    d, t, n = cfg["data"], cfg["training"], cfg["network"]
    if args.data:
        d["train"] = list(args.data)
    for key, attr in (("format", "format"), ("length_unit", "length_unit"),
                      ("energy_unit", "energy_unit"),
                      ("max_energy_above_min", "max_energy_above_min"),
                      ("max_energy_per_atom", "max_energy_per_atom"),
                      ("n_structures", "n_structures"), ("test_fraction", "test_fraction"),
                      ("validation_fraction", "validation_fraction"),
                      ("seed", "data_seed")):
        if getattr(args, attr) is not None:
            d[key] = getattr(args, attr)
    if args.test_data:
        d["test"] = list(args.test_data)
    if args.validation_data:
        d["validation"] = list(args.validation_data)
    if args.reference_energies:
        d["reference_energies"] = _parse_refs(args.reference_energies)
    # "is not None": --cutoff 0 and --size 0 must reach the schema (and be refused there)
    if args.descriptor or args.cutoff is not None or args.size is not None or args.radial \
            or args.angular:
        kind = args.descriptor or cfg["descriptor"].get("kind", "chebyshev")
        if args.radial or args.angular:
            if kind != "chebyshev":
                raise HdnnpError("--radial/--angular apply to the chebyshev descriptor")
            r = args.radial or [cfg["descriptor"].get("radial_rc", 6.5),
                                cfg["descriptor"].get("radial_order", 16)]
            a = args.angular or [cfg["descriptor"].get("angular_rc", 5.0),
                                 cfg["descriptor"].get("angular_order", 4)]
            # as given: the schema converts and checks them (descriptor.radial_rc: ...)
            cfg["descriptor"] = {"kind": "chebyshev", "radial_rc": r[0], "radial_order": r[1],
                                 "angular_rc": a[0], "angular_order": a[1]}
        else:
            old = cfg["descriptor"]
            cfg["descriptor"] = {
                "kind": kind,
                "cutoff": args.cutoff if args.cutoff is not None else old.get("cutoff", 6.5),
                "size": args.size if args.size is not None else old.get("size", 8)}
    if args.hidden:
        n["hidden"] = args.hidden
    if args.activation:
        n["activation"] = args.activation[0] if len(args.activation) == 1 else args.activation
    for key, attr in (("optimizer", "optimizer"), ("epochs", "epochs"),
                      ("batch_size", "batch_size"), ("learning_rate", "learning_rate"),
                      ("learning_rate_final", "learning_rate_final"),
                      ("momentum", "momentum"), ("weight_decay", "weight_decay"),
                      ("force_weight", "force_weight"), ("force_fraction", "force_fraction"),
                      ("early_stopping_patience", "patience"), ("seed", "seed"),
                      ("refine_epochs", "refine_epochs"), ("init_model", "init_model"),
                      ("device", "device"), ("threads", "threads"), ("max_time_s", "max_time"),
                      ("dtype", "dtype"), ("committee", "committee"), ("jobs", "jobs")):
        if getattr(args, attr) is not None:
            t[key] = getattr(args, attr)
    if t.get("learning_rate_final") == "none":
        t["learning_rate_final"] = None
    if args.stage:
        t["stages"] = parse_stages(args.stage)
        for derived in ("optimizer", "epochs"):  # the chain's unless given (then checked)
            if getattr(args, derived) is None:
                t.pop(derived, None)
    if args.output:
        cfg["output"] = args.output
    return cfg


def parse_stages(texts: list[str]) -> list[dict]:
    """``OPT:EPOCHS[:KEY=VALUE,...]`` flags as ``training.stages`` entries (values as text:
    the schema converts and checks them)."""
    stages = []
    for text in texts:
        parts = text.split(":", 2)
        if len(parts) < 2 or not parts[0] or not parts[1]:
            raise HdnnpError(f"--stage {text!r}: expected OPTIMIZER:EPOCHS[:KEY=VALUE,...], "
                             "e.g. adam:300:learning_rate=1e-3")
        stage = {"optimizer": parts[0].strip(), "epochs": parts[1].strip()}
        for item in (parts[2].split(",") if len(parts) == 3 else []):
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise HdnnpError(f"--stage {text!r}: cannot read setting {item!r} (KEY=VALUE)")
            stage[key.strip()] = value.strip()
        stages.append(stage)
    return stages


#: flags that a resumed run takes (everything else is fixed by its config.json)
RESUME_FLAGS = {"resume", "epochs", "stage", "quiet", "func", "help_config", "command"}


def _refuse_flags_of_a_resumed_run(args) -> None:
    """A flag that cannot apply to a resumed run is an error, never silently ignored."""
    given = sorted(k for k, v in vars(args).items()
                   if k not in RESUME_FLAGS and v not in (None, False, []))
    if given:
        flags = ", ".join("--" + k.replace("_", "-") if k != "data" else "data files"
                          for k in given)
        raise HdnnpError(f"--resume continues {args.resume} with its own configuration; "
                         f"{flags} cannot apply to it (only --epochs or --stage extend it)")


def run(args) -> int:
    from hdnnp.training.config import TrainConfig, describe_schema

    if args.help_config:
        print(describe_schema())
        return 0
    from hdnnp.training import train
    from hdnnp.training.trainer import raise_if_interrupted

    if args.resume:
        _refuse_flags_of_a_resumed_run(args)
        if args.epochs is not None and args.stage:
            raise HdnnpError("--resume takes --epochs (more epochs for the last stage) or "
                             "--stage (new stages), not both")
        output = args.resume
        metrics = train(TrainConfig.from_dict({"output": output}), resume=True,
                        progress=not args.quiet, epochs=args.epochs,
                        stages=parse_stages(args.stage) if args.stage else None)
    else:
        cfg = TrainConfig.from_dict(config_from_args(args), "command line")
        if not cfg.data.train:
            raise HdnnpError("no training data: give files (or bundled:NAME) or --config")
        output = cfg.output
        metrics = train(cfg, progress=not args.quiet)
    raise_if_interrupted(metrics, output)  # Ctrl-C: exit 130, where the model is
    keys = [k for k in ("train_energy_rmse_meV_per_atom",
                        "validation_energy_rmse_meV_per_atom",
                        "test_energy_rmse_meV_per_atom", "test_energy_mae_meV_per_atom",
                        "train_force_rmse_eV_per_A", "validation_force_rmse_eV_per_A",
                        "test_force_rmse_eV_per_A", "test_force_pearson_r", "wall_s")
            if k in metrics]
    print(json.dumps({k: metrics[k] for k in keys}, indent=2))
    return 0
