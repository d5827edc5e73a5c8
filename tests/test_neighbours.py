"""Neighbour lists (vesin) against ASE and explicit image loops; triplet enumeration."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from ase.build import graphene
from ase.neighborlist import neighbor_list

from hdnnp.errors import HdnnpError
from hdnnp.neighbours import build_batch, neighbour_pairs, segments, triplet_pairs

from conftest import rutile, tio2_cluster


def _sorted_pairs(i, j, s):
    return sorted(zip(i.tolist(), j.tolist(), map(tuple, np.asarray(s).tolist())))


@pytest.mark.parametrize("cutoff", [2.5, 6.0, 9.0])
def test_matches_ase_neighbour_list_with_many_images(cutoff):
    atoms = rutile()  # c = 2.96 Å: a 9 Å cutoff needs several images along c
    i, j, s = neighbour_pairs(atoms, cutoff)
    ai, aj, aS = neighbor_list("ijS", atoms, cutoff)
    assert _sorted_pairs(i, j, s) == _sorted_pairs(ai, aj, aS)
    assert np.all(np.diff(i) >= 0)


def test_slab_and_cluster_periodicity():
    sheet = graphene(a=2.46, vacuum=5.0).repeat((2, 2, 1))
    sheet.pbc = (True, True, False)
    i, j, s = neighbour_pairs(sheet, 5.0)
    assert np.all(s[:, 2] == 0)
    ai, aj, aS = neighbor_list("ijS", sheet, 5.0)
    assert _sorted_pairs(i, j, s) == _sorted_pairs(ai, aj, aS)
    cluster = tio2_cluster()
    i, j, s = neighbour_pairs(cluster, 3.0)
    assert np.all(s == 0)
    d = np.linalg.norm(cluster.positions[j] - cluster.positions[i], axis=1)
    assert np.all(d < 3.0)


def test_batch_pair_vectors_and_unknown_element():
    structs = [rutile(), tio2_cluster()]
    batch = build_batch(structs, ["O", "Ti"], 4.0)
    vec = batch.pair_vectors().numpy()
    n0 = len(structs[0])
    first = batch.centers.numpy() < n0
    a_d = neighbor_list("D", structs[0], 4.0)
    assert sorted(np.round(np.linalg.norm(vec[first], axis=1), 10)) == \
        sorted(np.round(np.linalg.norm(a_d, axis=1), 10))
    with pytest.raises(HdnnpError, match="element"):
        build_batch(structs, ["O"], 4.0)


def test_triplet_pairs_against_loops():
    centers = torch.tensor([0, 0, 0, 2, 2, 3, 5, 5, 5, 5])
    a, b = triplet_pairs(centers, 7)
    expected = [(p, q) for p, q in itertools.combinations(range(10), 2)
                if centers[p] == centers[q]]
    assert list(zip(a.tolist(), b.tolist())) == expected
    e = torch.zeros(0, dtype=torch.long)
    assert triplet_pairs(e, 3)[0].numel() == 0


def test_segments_equal_repeat_interleave():
    reps = torch.tensor([3, 0, 2, 0, 0, 4, 1])
    seg, local = segments(reps)
    assert torch.equal(seg, torch.repeat_interleave(torch.arange(7), reps))
    assert local.tolist() == [0, 1, 2, 0, 1, 0, 1, 2, 3, 0]
