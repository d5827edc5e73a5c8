"""The training configuration schema (issue 10, item 1): every wrong value is refused in
one line naming the file (or "command line") and the dotted key, before any set-up; right
values are converted ("1e-3" -> 0.001); files that cannot be read are InputFileErrors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hdnnp.cli import main
from hdnnp.errors import HdnnpError, InputFileError
from hdnnp.training.config import DataConfig, NetworkConfig, OptimConfig, TrainConfig, load_config

SECTIONS = {"data": DataConfig, "network": NetworkConfig, "training": OptimConfig}


def refused(d: dict, source: str = "configuration") -> str:
    """The one-line message of the HdnnpError that ``d`` must raise."""
    with pytest.raises(HdnnpError) as info:
        TrainConfig.from_dict(d, source)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(f"{source}: "), msg
    return msg


def write(tmp_path, name: str, text: str | bytes):
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


# ----------------------------------------------------------- the examples
def test_learning_rate_1e_3_in_yaml_is_the_number_0_001(tmp_path):
    # PyYAML (YAML 1.1) reads 1e-3 as the string "1e-3"
    cfg = load_config(write(tmp_path, "c.yaml", "training:\n  learning_rate: 1e-3\n"))
    assert cfg.training.learning_rate == 0.001
    assert isinstance(cfg.training.learning_rate, float)


def test_negative_epochs_are_refused():
    msg = refused({"training": {"epochs": -5}})
    assert "training.epochs: must be at least 0 (got -5)" in msg
    assert "training.epochs: a run needs at least one epoch" in refused(
        {"training": {"epochs": 0}})
    # 0 main epochs with L-BFGS refinement is a run (the trainer's own rule)
    assert TrainConfig.from_dict({"training": {"epochs": 0, "refine_epochs": 2}})


def test_hidden_as_a_string_is_refused_and_a_bare_integer_is_one_layer():
    assert "network.hidden: expected a list of layer widths" in refused(
        {"network": {"hidden": "20"}})
    assert "network.hidden[1]: must be at least 1" in refused(
        {"network": {"hidden": [20, 0]}})
    assert TrainConfig.from_dict({"network": {"hidden": 20}}).network.hidden == [20]
    # no hidden layer (a linear model) stays legal
    assert TrainConfig.from_dict({"network": {"hidden": []}}).network.hidden == []


def test_output_null_is_refused():
    assert "output: must be a run directory, not null" in refused({"output": None})
    assert "output: must not be empty" in refused({"output": ""})


def test_negative_force_weight_and_no_loss_at_all_are_refused():
    assert "training.force_weight: must be at least 0" in refused(
        {"training": {"force_weight": -1}})
    assert "training.force_weight: energy_weight + force_weight must be > 0" in refused(
        {"training": {"force_weight": 0, "energy_weight": 0}})


def test_non_utf8_file_is_an_input_file_error_naming_the_file(tmp_path):
    path = write(tmp_path, "c.yaml", b"training:\n  epochs: 3\n# \xff\xfe\n")
    with pytest.raises(InputFileError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}, line 3: not UTF-8")


# ----------------------------------------------------------- types and ranges
@pytest.mark.parametrize("section, key, value, expect", [
    ("training", "epochs", True, "expected a number, got true"),
    ("training", "batch_size", 0, "must be at least 1"),
    ("training", "batch_size", 2.5, "integer"),
    ("training", "learning_rate", float("nan"), "must be a finite number"),
    ("training", "learning_rate", "inf", "must be a finite number"),
    ("training", "learning_rate", -1e-3, "must be at least 0"),
    ("training", "learning_rate", False, "expected a number, got false"),
    ("training", "momentum", 1.0, "must be less than 1"),
    ("training", "weight_decay", -0.1, "must be at least 0"),
    ("training", "energy_weight", 1e400, "must be a finite number"),
    ("training", "force_fraction", 1.5, "must be at most 1"),
    ("training", "optimizer", "adm", "'adam', 'lbfgs', 'sgd', 'lm' or 'kalman'"),
    ("training", "dtype", "float16", "'float64' or 'float32'"),
    ("training", "jacobian_dtype", "half", "'float64' or 'float32'"),
    ("training", "committee", 0, "must be at least 1"),
    ("training", "jobs", 0, "must be at least 1"),
    ("training", "threads", 0, "must be at least 1"),
    ("training", "max_time_s", 0, "must be greater than 0"),
    ("training", "early_stopping_patience", 0, "must be at least 1"),
    ("training", "eval_train_every", 0, "must be at least 1"),
    ("training", "lbfgs_history", 0, "must be at least 1"),
    ("training", "lbfgs_iterations_per_epoch", -1, "must be at least 1"),
    ("training", "refine_epochs", -1, "must be at least 0"),
    ("training", "seed", -1, "must be at least 0"),
    ("training", "seed", 1.5, "integer"),
    ("training", "device", "", "must not be empty"),
    ("data", "test_fraction", 1.0, "must be less than 1"),
    ("data", "n_structures", 0, "must be at least 1"),
    ("data", "seed", True, "expected a number, got true"),
    ("data", "max_energy_above_min", -1.0, "must be at least 0"),
    ("data", "max_energy_per_atom", float("-inf"), "must be a finite number"),
    ("data", "train", 5, "valid list"),
    ("data", "length_unit", "furlong", "unknown length unit"),
    ("network", "activation", "foo", "unknown activation 'foo'"),
])
def test_wrong_types_and_ranges_are_refused_naming_the_key(section, key, value, expect):
    msg = refused({section: {key: value}})
    assert f"configuration: {section}.{key}: " in msg and expect in msg, msg


def test_reference_energies_need_element_symbols_and_finite_numbers():
    assert "data.reference_energies.Oo: key 'Oo' is not a chemical element symbol (did you " \
        "mean 'O'?)" in refused({"data": {"reference_energies": {"Oo": -432.5}}})
    assert "data.reference_energies.O: must be a finite number" in refused(
        {"data": {"reference_energies": {"O": "nan"}}})
    cfg = TrainConfig.from_dict({"data": {"reference_energies": {"O": "-432.5", "Ti": -1604}}})
    assert cfg.data.reference_energies == {"O": -432.5, "Ti": -1604.0}


def test_one_activation_per_layer_must_match_the_layers():
    assert "network.activation: 2 hidden layer(s) need as many activations, got 3" in refused(
        {"network": {"hidden": [5, 5], "activation": ["tanh", "tanh", "twist"]}})
    assert "network.activation[1]: unknown activation 'tnah'" in refused(
        {"network": {"hidden": [5, 5], "activation": ["tanh", "tnah"]}})
    cfg = TrainConfig.from_dict({"network": {"hidden": [5, 5], "activation": ["t", "twist"]}})
    assert cfg.network.activation == ["t", "twist"]


def test_data_files_are_a_list_of_file_names():
    cfg = TrainConfig.from_dict({"data": {"train": "a.xyz", "test": Path("b.xyz")}})
    assert cfg.data.train == ["a.xyz"] and cfg.data.test == ["b.xyz"]
    assert "data.train[1]: Input should be a valid string (got 5)" in refused(
        {"data": {"train": ["a.xyz", 5]}})


def test_assignment_is_validated_too():
    cfg = TrainConfig()
    with pytest.raises(HdnnpError, match=r"^configuration: training.epochs: must be at least"):
        cfg.training.epochs = -1
    cfg.output = "runs/elsewhere"
    assert cfg.output == "runs/elsewhere"


# ----------------------------------------------------------- descriptor
def test_descriptor_kind_and_parameters_are_checked():
    assert "descriptor.kind: unknown descriptor kind 'cheb' (did you mean 'chebyshev'?)" in \
        refused({"descriptor": {"kind": "cheb", "cutoff": 6.0, "size": 8}})
    assert "descriptor.kind: missing" in refused({"descriptor": {"cutoff": 6.0}})
    full = {"kind": "chebyshev", "radial_rc": 4.0, "radial_order": 6, "angular_rc": 3.5,
            "angular_order": 3}
    assert "descriptor.radial_rc: must be a positive finite number" in refused(
        {"descriptor": dict(full, radial_rc=-4.0)})
    assert "descriptor.angular_order: missing" in refused(
        {"descriptor": {k: v for k, v in full.items() if k != "angular_order"}})
    assert "descriptor.radial_cutoff: unknown key for a chebyshev descriptor (did you mean " \
        "'radial_rc'?)" in refused({"descriptor": dict(full, radial_cutoff=4.0)})
    assert "descriptor.size: must be in [1, 1000], got 0" in refused(
        {"descriptor": {"kind": "behler", "cutoff": 6.0, "size": 0}})
    sf = {"type": "G2", "center": "H", "neighbours": ["O"], "rc": 6.0, "eta": "x"}
    assert "descriptor.functions: symmetry function 0: parameter 'eta' must be a number" in \
        refused({"descriptor": {"kind": "symmetry_functions", "functions": [sf]}})
    cfg = TrainConfig.from_dict({"descriptor": dict(full, radial_rc="4.0")})
    assert cfg.descriptor == full  # numbers as numbers


# ----------------------------------------------------------- unknown keys
def test_unknown_key_has_a_did_you_mean_hint():
    assert refused({"trainig": {}}) == "configuration: trainig: unknown key (did you mean " \
        "'training'?)"


def test_nested_unknown_key_in_a_file_names_file_line_and_key(tmp_path):
    path = write(tmp_path, "configuration.yaml",
                 "data:\n  train: [x.xyz]\ntraining:\n  learnign_rate: 1e-3\n")
    with pytest.raises(InputFileError) as info:
        load_config(path)
    assert str(info.value) == (f"{path}, line 4: training.learnign_rate: unknown key "
                               "(did you mean 'learning_rate'?)")


def test_repeated_yaml_key_is_refused(tmp_path):
    path = write(tmp_path, "c.yaml", "training:\n  epochs: 3\n  epochs: 4\n")
    with pytest.raises(InputFileError, match=r"line 3: training.epochs: repeated key"):
        load_config(path)


# ----------------------------------------------------------- file formats
def test_yaml_toml_json_give_the_same_result(tmp_path):
    yaml_text = ("data:\n  train: [a.xyz]\n  test_fraction: 0.2\nnetwork:\n  hidden: [8, 4]\n"
                 "training:\n  epochs: {epochs}\n  learning_rate: 0.002\noutput: runs/x\n")
    toml_text = ('output = "runs/x"\n[data]\ntrain = ["a.xyz"]\ntest_fraction = 0.2\n'
                 "[network]\nhidden = [8, 4]\n[training]\nepochs = {epochs}\n"
                 "learning_rate = 0.002\n")
    for epochs, ok in ((7, True), (-7, False)):
        d = {"data": {"train": ["a.xyz"], "test_fraction": 0.2}, "network": {"hidden": [8, 4]},
             "training": {"epochs": epochs, "learning_rate": 0.002}, "output": "runs/x"}
        files = [write(tmp_path, "c.yaml", yaml_text.format(epochs=epochs)),
                 write(tmp_path, "c.cfg", yaml_text.format(epochs=epochs)),  # read as YAML
                 write(tmp_path, "c.toml", toml_text.format(epochs=epochs)),
                 write(tmp_path, "c.json", json.dumps(d))]
        if ok:
            configs = [load_config(f) for f in files]
            assert all(c == configs[0] for c in configs)
            assert configs[0].training.epochs == 7 and configs[0].network.hidden == [8, 4]
        else:
            for f in files:
                with pytest.raises(InputFileError) as info:
                    load_config(f)
                assert str(info.value).startswith(str(f))
                assert str(info.value).endswith("training.epochs: must be at least 0 (got -7)")


@pytest.mark.parametrize("name, text, expect", [
    ("empty.yaml", "", "empty configuration file"),
    ("comments.yaml", "# nothing\n", "no settings"),
    ("list.yaml", "- 1\n- 2\n", "expected a mapping of sections at the top level, got list"),
    ("scalar.json", "3", "expected a mapping of sections at the top level, got int"),
    ("bad.yaml", "data: [\n", "line 2: cannot parse configuration (ParserError: expected the "
     "node content, but found '<stream end>')"),
    ("bad.toml", "[training\n", "line 1: cannot parse configuration (TOMLDecodeError"),
    ("twice.json", '{"training": {"epochs": 3, "epochs": 4}}', "repeated key 'epochs'"),
])
def test_unreadable_files_are_input_file_errors(tmp_path, name, text, expect):
    path = write(tmp_path, name, text)
    with pytest.raises(InputFileError) as info:
        load_config(path)
    msg = str(info.value)
    assert msg.startswith(str(path)) and expect in msg and "\n" not in msg, msg


def test_blank_paths_are_refused():
    """``train: ["  "]`` was accepted (found by the fuzz harness)."""
    with pytest.raises(HdnnpError, match=r"data.train\[0\]: must not be empty or blank"):
        TrainConfig.from_dict({"data": {"train": ["  "]}}, "c.yaml")
    with pytest.raises(HdnnpError, match="output: must not be empty or blank"):
        TrainConfig.from_dict({"output": " "}, "c.yaml")


def test_old_run_config_json_still_loads_and_is_checked(tmp_path):
    # what TrainConfig.to_dict() wrote before the schema (dataclasses.asdict)
    old = {"data": {"train": ["bundled:graphene-A"], "test": [], "format": None,
                    "length_unit": None, "energy_unit": None, "reference_energies": None,
                    "max_energy_per_atom": None, "max_energy_above_min": None,
                    "n_structures": None, "test_fraction": 0.1, "seed": 1},
           "descriptor": {"kind": "chebyshev", "radial_rc": 6.0, "radial_order": 14,
                          "angular_rc": 5.0, "angular_order": 8},
           "network": {"hidden": [20, 20], "activation": "tanh"},
           "training": {"optimizer": "adam", "epochs": 600, "batch_size": 16,
                        "learning_rate": 0.005, "learning_rate_final": 1e-05, "momentum": 0.9,
                        "weight_decay": 0.0, "energy_weight": 1.0, "force_weight": 0.1,
                        "force_fraction": 1.0, "early_stopping_patience": None,
                        "refine_epochs": 0, "lbfgs_history": 50,
                        "lbfgs_iterations_per_epoch": 1, "init_model": None, "seed": 1,
                        "dtype": "float64", "jacobian_dtype": "float32", "device": "auto",
                        "threads": None, "max_time_s": None, "eval_train_every": 10,
                        "committee": 1, "jobs": 1},
           "output": "runs/graphene-A", "figures": True}
    path = write(tmp_path, "config.json", json.dumps(old, indent=2))
    new = load_config(path).to_dict()  # keys added since keep their defaults
    assert {sec: ({k: new[sec][k] for k in val} if isinstance(val, dict) and sec != "descriptor"
                  else new[sec]) for sec, val in old.items()} == old
    # json.loads accepts NaN: a damaged config.json is refused, naming file and key
    old["training"]["learning_rate"] = float("nan")
    write(tmp_path, "config.json", json.dumps(old))
    with pytest.raises(InputFileError, match=r"config.json: training.learning_rate: must be "
                       "a finite number"):
        load_config(path)


def test_round_trip_keeps_converted_values(tmp_path):
    cfg = load_config(write(tmp_path, "c.yaml", "data:\n  train: a.xyz\n"
                            "training:\n  learning_rate: 1e-3\n  max_time_s: '3600'\n"
                            "descriptor: {kind: behler, cutoff: '6', size: 4}\n"))
    d = cfg.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["training"]["learning_rate"] == 0.001 and d["training"]["max_time_s"] == 3600.0
    assert d["data"]["train"] == ["a.xyz"] and d["descriptor"]["cutoff"] == 6.0
    assert TrainConfig.from_dict(d) == cfg
    assert TrainConfig.from_dict(TrainConfig().to_dict()) == TrainConfig()


# ----------------------------------------------------------- command line
def test_help_config_lists_every_key(capsys):
    assert main(["train", "--help-config"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    for name in TrainConfig.model_fields:
        if name not in SECTIONS:
            assert any(line.lstrip().startswith(f"{name}: ") for line in lines), name
    for section, model in SECTIONS.items():
        for name, info in model.model_fields.items():
            line = next(line for line in lines if line.lstrip().startswith(f"{section}.{name}:"))
            assert info.description and info.description in line
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "--help-config" in capsys.readouterr().out


def test_flags_go_through_the_schema(tmp_path, capsys):
    out = str(tmp_path / "X")
    for argv, key in ((["--epochs", "0"], "training.epochs"),
                      (["--cutoff", "0"], "descriptor.cutoff"),
                      (["--radial", "x", "5"], "descriptor.radial_rc"),
                      (["--learning-rate", "nan"], "training.learning_rate"),
                      (["--reference-energies", "C=inf"], "data.reference_energies.C")):
        rc = main(["train", "bundled:graphene-A", *argv, "-o", out, "--quiet"])
        err = capsys.readouterr().err
        assert rc == 2 and err.count("\n") == 1, (argv, err)
        assert err.startswith(f"hdnnp: error: command line: {key}: "), (argv, err)
    # argparse's own type checks stay argparse's
    with pytest.raises(SystemExit) as info:
        main(["train", "bundled:graphene-A", "--epochs", "many"])
    assert info.value.code == 2 and "invalid int value" in capsys.readouterr().err


def test_interrupted_training_exits_130(tmp_path, monkeypatch, capsys):
    from hdnnp.training import trainer

    monkeypatch.setattr(trainer.Trainer, "run", lambda self: {
        "stop_reason": "interrupted", "model": str(tmp_path / "model.json"), "best_epoch": 3})
    rc = main(["train", "bundled:graphene-A", "-o", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 130 and "hdnnp train --resume" in err and err.count("\n") == 1


# ----------------------------------------------------------- property test
# the keys of each section (written out: the strategies must not depend on the schema)
FIELDS = {
    "": ["data", "descriptor", "network", "training", "output", "figures"],
    "data": ["train", "test", "format", "length_unit", "energy_unit", "reference_energies",
             "max_energy_per_atom", "max_energy_above_min", "n_structures", "test_fraction",
             "seed"],
    "network": ["hidden", "activation"],
    "training": ["optimizer", "epochs", "batch_size", "learning_rate", "learning_rate_final",
                 "momentum", "weight_decay", "energy_weight", "force_weight", "force_fraction",
                 "early_stopping_patience", "refine_epochs", "lbfgs_history",
                 "lbfgs_iterations_per_epoch", "init_model", "seed", "dtype", "jacobian_dtype",
                 "device", "threads", "max_time_s", "eval_train_every", "committee", "jobs"],
}
NAMES = sorted({n for names in FIELDS.values() for n in names} | {
    "kind", "cutoff", "size", "radial_rc", "radial_order", "angular_rc", "angular_order",
    "functions", "elements", "O", "Ti"})
KEYS = st.one_of(st.sampled_from(NAMES), st.text(max_size=8), st.integers(-3, 3), st.none())
LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-2, 3),
    st.sampled_from([10**400, -(10**30), 2**63]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e308, -0.0, 0.0, 1e-3]),
    st.text(max_size=10),
    st.sampled_from(["1e-3", "nan", "inf", "-1", "20", "adam", "tanh", "float32", "chebyshev",
                     "behler", "O", ""]))
VALUES = st.recursive(LEAVES, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=4)), max_leaves=12)
SECTION = st.one_of(VALUES, st.dictionaries(st.one_of(st.sampled_from(NAMES), KEYS), VALUES,
                                            max_size=6))
RANDOM = st.dictionaries(st.one_of(st.sampled_from(FIELDS[""]), KEYS),
                         SECTION, max_size=5)
# nearly right configurations: real keys of each section, a few values each
PLAUSIBLE = st.one_of(st.integers(0, 64), st.floats(0, 1), st.none(),
                      st.sampled_from(["a.xyz", "eV", "bohr", "tanh", "O"]))
SMALL = st.one_of(PLAUSIBLE, PLAUSIBLE, LEAVES, st.lists(st.one_of(PLAUSIBLE, LEAVES),
                                                          max_size=3))
DESCRIPTORS = st.one_of(
    st.fixed_dictionaries({"kind": st.sampled_from(["chebyshev", "behler", "n2p2", "x"])},
                          optional={"cutoff": SMALL, "size": SMALL}),
    st.fixed_dictionaries({"kind": st.just("chebyshev"), "radial_rc": SMALL,
                           "radial_order": SMALL, "angular_rc": SMALL,
                           "angular_order": SMALL}, optional={"spins": SMALL}))
STRUCTURED = st.fixed_dictionaries({}, optional={
    **{name: st.dictionaries(st.sampled_from(FIELDS[name]), SMALL, max_size=3)
       for name in SECTIONS},
    "descriptor": DESCRIPTORS, "output": SMALL, "figures": SMALL})
CONFIGS = st.one_of(RANDOM, STRUCTURED)

# (lower bound, lower bound inclusive, upper bound, upper inclusive) of every numeric key
RANGES = {
    "data.max_energy_per_atom": (-math.inf, True, math.inf, True),
    "data.max_energy_above_min": (0, True, math.inf, True),
    "data.n_structures": (1, True, math.inf, True),
    "data.test_fraction": (0, True, 1, False),
    "data.validation_fraction": (0, True, 1, False),
    "data.seed": (0, True, math.inf, True),
    "network.hidden": (1, True, math.inf, True),
    "training.epochs": (0, True, math.inf, True),
    "training.batch_size": (1, True, math.inf, True),
    "training.learning_rate": (0, True, math.inf, True),
    "training.learning_rate_final": (0, True, math.inf, True),
    "training.momentum": (0, True, 1, False),
    "training.weight_decay": (0, True, math.inf, True),
    "training.energy_weight": (0, True, math.inf, True),
    "training.force_weight": (0, True, math.inf, True),
    "training.force_fraction": (0, True, 1, True),
    "training.early_stopping_patience": (1, True, math.inf, True),
    "training.refine_epochs": (0, True, math.inf, True),
    "training.lbfgs_history": (1, True, math.inf, True),
    "training.lbfgs_iterations_per_epoch": (1, True, math.inf, True),
    "training.seed": (0, True, math.inf, True),
    "training.threads": (1, True, math.inf, True),
    "training.max_time_s": (0, False, math.inf, True),
    "training.eval_train_every": (1, True, math.inf, True),
    "training.committee": (1, True, math.inf, True),
    "training.jobs": (1, True, math.inf, True),
    "training.lm_mu": (0, False, math.inf, True),
    "training.lm_mu_increase": (1, False, math.inf, True),
    "training.lm_mu_decrease": (0, False, 1, False),
    "training.lm_subset": (1, True, math.inf, True),
    "training.lm_block_atoms": (1, True, math.inf, True),
    "training.kalman_epsilon": (0, False, math.inf, True),
    "training.kalman_q0": (0, True, math.inf, True),
    "training.kalman_qtau": (0, True, math.inf, True),
    "training.kalman_qmin": (0, True, math.inf, True),
    "training.kalman_eta": (0, False, math.inf, True),
    "training.kalman_etatau": (0, True, math.inf, True),
    "training.kalman_etamax": (0, False, math.inf, True),
    "training.kalman_lambda_short": (0, False, 1, True),
    "training.kalman_nue_short": (0, False, 1, True),
    "training.kalman_streams": (1, True, math.inf, True),
    "training.kalman_force_fraction": (0, False, 1, True),
}


def numbers(value, key=""):
    """(dotted key, number) of every number in a nested dict/list."""
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        yield key, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from numbers(v, f"{key}.{k}" if key else str(k))
    elif isinstance(value, list):
        for v in value:
            yield from numbers(v, key)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(CONFIGS)
def test_random_configurations_are_valid_or_one_line_hdnnp_errors(d):
    try:
        cfg = TrainConfig.from_dict(d, "fuzz")
    except HdnnpError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("fuzz: ")
        return
    d = cfg.to_dict()
    json.dumps(d, allow_nan=False)  # what the run directory gets
    for key, x in numbers(d):
        assert math.isfinite(x), (key, x)
        for group in ("data.reference_energies", "descriptor"):
            if key.startswith(group):
                break
        else:
            lo, lo_in, hi, hi_in = RANGES[key]
            assert (lo <= x if lo_in else lo < x) and (x <= hi if hi_in else x < hi), (key, x)
    t = cfg.training
    assert t.epochs + t.refine_epochs >= 1 and t.energy_weight + t.force_weight > 0
    assert cfg.output and all(isinstance(f, str) and f for f in cfg.data.train)
    assert TrainConfig.from_dict(d) == cfg
