"""``hdnnp data select --where`` with comparisons and ranges (issue 12)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ase import Atoms

from hdnnp.cli import main
from hdnnp.data import parse_where, where_matches
from hdnnp.errors import HdnnpError

DEVS = [0.02, 0.1, 0.15, 0.3, 1.2, math.inf]


@pytest.fixture
def scored_file(tmp_path):
    """Six unlabelled snapshots with max_force_dev 0.02 … inf and a text key."""
    from hdnnp.io import write_structures

    frames = []
    for k, dev in enumerate(DEVS):
        a = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.7 + 0.01 * k]], cell=[6, 6, 6],
                  pbc=True)
        a.info.update({"max_force_dev": dev, "temperature_K": 300.0 if k < 3 else 1500.0,
                       "phase": "low" if k < 3 else "high", "idx": k})
        frames.append(a)
    path = tmp_path / "explored.extxyz"
    write_structures(path, frames)
    return path


def _selected(path) -> list[int]:
    from hdnnp.io import read_structures

    return [int(a.info["idx"]) for a in read_structures(path)] if path.exists() else []


@pytest.mark.parametrize("cond, expected", [
    ("max_force_dev>0.1", [2, 3, 4, 5]),
    ("max_force_dev>=0.1", [1, 2, 3, 4, 5]),
    ("max_force_dev<0.15", [0, 1]),
    ("max_force_dev<=0.15", [0, 1, 2]),
    ("max_force_dev!=0.3", [0, 1, 2, 4, 5]),
    ("max_force_dev=0.3", [3]),
    ("max_force_dev==0.3", [3]),
    ("temperature_K=1500", [3, 4, 5]),
    ("phase=low", [0, 1, 2]),
    ("phase!=low", [3, 4, 5]),
    ("missing_key!=1", []),
])
def test_where_single_condition(scored_file, tmp_path, cond, expected):
    out = tmp_path / "sel.extxyz"
    assert main(["data", "select", str(scored_file), "-o", str(out), "--where", cond]) == 0
    assert _selected(out) == expected


def test_where_conditions_are_anded_into_a_range(scored_file, tmp_path):
    out = tmp_path / "window.extxyz"
    assert main(["data", "select", str(scored_file), "-o", str(out), "--where",
                 "max_force_dev>=0.1", "--where", "max_force_dev<=1.0"]) == 0
    assert _selected(out) == [1, 2, 3]
    assert main(["data", "select", str(scored_file), "-o", str(out), "--where",
                 "max_force_dev>0.05", "--where", "temperature_K=300"]) == 0
    assert _selected(out) == [1, 2]


def test_parse_where_operators():
    assert parse_where("a>=1") == ("a", ">=", "1")
    assert parse_where("a>1") == ("a", ">", "1")
    assert parse_where("a==x") == ("a", "=", "x")
    assert parse_where("a!=x") == ("a", "!=", "x")
    assert parse_where("name=a=b") == ("name", "=", "a=b")
    assert parse_where(" s <= -0.05 ") == ("s", "<=", "-0.05")


@pytest.mark.parametrize("cond", ["max_force_dev", "=3", "a>x", "a<nan", "a>=inf"])
def test_parse_where_refuses(cond):
    with pytest.raises(HdnnpError):
        parse_where(cond)


def test_where_numeric_not_lexical():
    # "10" > "9" is false as text, true as numbers
    assert where_matches({"n": 10}, "n", ">", "9")
    assert where_matches({"n": np.float64(0.25)}, "n", "<", "1e0")
    assert not where_matches({"n": "abc"}, "n", "<", "1")
    assert not where_matches({"n": math.nan}, "n", ">", "0")
    assert not where_matches({"n": True}, "n", ">", "0")


def test_where_bad_condition_is_one_line_error(scored_file, tmp_path, capsys):
    rc = main(["data", "select", str(scored_file), "-o", str(tmp_path / "x.extxyz"),
               "--where", "max_force_dev>big"])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "finite number" in err[0]
