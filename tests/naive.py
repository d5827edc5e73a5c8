"""Deliberately naive reference implementations of the descriptors, for tests.

Explicit Python loops over atoms, periodic images and neighbour pairs, written
straight from the published formulas (Behler, J. Chem. Phys. 134, 074106 (2011) in
ænet's conventions; Artrith, Urban, Ceder, PRB 96, 014112 (2017)), sharing no code
with hdnnp's vectorised engine.
"""

from __future__ import annotations

import itertools
import math

import numpy as np


def neighbour_images(atoms, cutoff):
    """For every atom i: list of (j, vector r_j + shift - r_i) closer than ``cutoff``."""
    pos = atoms.get_positions()
    cell = atoms.cell.array
    pbc = atoms.pbc
    ranges = []
    for k in range(3):
        if pbc[k]:
            other = [cell[(k + 1) % 3], cell[(k + 2) % 3]]
            normal = np.cross(*other)
            spacing = abs(np.dot(cell[k], normal)) / np.linalg.norm(normal)
            n = math.ceil(cutoff / spacing) + 1
            ranges.append(range(-n, n + 1))
        else:
            ranges.append(range(0, 1))
    out = []
    for i in range(len(atoms)):
        lst = []
        for n in itertools.product(*ranges):
            shift = np.dot(n, cell)
            for j in range(len(atoms)):
                if j == i and n == (0, 0, 0):
                    continue
                d = pos[j] + shift - pos[i]
                r = math.sqrt(d @ d)
                if r < cutoff:
                    lst.append((j, d))
        out.append(lst)
    return out


def fc_cos(r, rc):
    return 0.5 * (math.cos(math.pi * r / rc) + 1.0) if r < rc else 0.0


def behler(atoms, functions, elements):
    """ænet-convention G1-G5 for each atom: dict element -> list of feature rows."""
    sym = atoms.get_chemical_symbols()
    rc_max = max(f["rc"] for f in functions)
    nb = neighbour_images(atoms, rc_max)
    rows = []
    for i in range(len(atoms)):
        feats = []
        for f in functions:
            if f["center"] != sym[i]:
                continue
            rc = f["rc"]
            val = 0.0
            if f["type"] in ("G1", "G2", "G3"):
                for j, d in nb[i]:
                    if sym[j] != f["neighbours"][0]:
                        continue
                    r = np.linalg.norm(d)
                    if r >= rc:
                        continue
                    if f["type"] == "G1":
                        val += fc_cos(r, rc)
                    elif f["type"] == "G2":
                        val += math.exp(-f["eta"] * (r - f.get("rs", 0.0)) ** 2) * fc_cos(r, rc)
                    else:
                        val += math.cos(f["kappa"] * r) * fc_cos(r, rc)
            else:
                pair = sorted(f["neighbours"])
                lst = nb[i]
                for a in range(len(lst)):
                    for b in range(a + 1, len(lst)):
                        j, dj = lst[a]
                        k, dk = lst[b]
                        if sorted([sym[j], sym[k]]) != pair:
                            continue
                        rij, rik = np.linalg.norm(dj), np.linalg.norm(dk)
                        if rij >= rc or rik >= rc:
                            continue
                        rjk = np.linalg.norm(dk - dj)
                        cos = dj @ dk / (rij * rik)
                        ang = 2.0 ** (1 - f["zeta"]) * (1 + f["lambda"] * cos) ** f["zeta"]
                        if f["type"] == "G4":
                            val += ang * math.exp(-f["eta"] * (rij**2 + rik**2 + rjk**2)) * \
                                fc_cos(rij, rc) * fc_cos(rik, rc) * fc_cos(rjk, rc)
                        else:
                            val += ang * math.exp(-f["eta"] * (rij**2 + rik**2)) * \
                                fc_cos(rij, rc) * fc_cos(rik, rc)
            feats.append(val)
        rows.append(feats)
    return rows


def chebyshev(atoms, elements, rrc, rorder, arc, aorder, spins):
    """ænet Chebyshev descriptor of each atom (list of rows)."""
    sym = atoms.get_chemical_symbols()
    spin = dict(zip(elements, spins))
    nb = neighbour_images(atoms, max(rrc, arc))
    multi = len(elements) > 1
    rows = []
    for i in range(len(atoms)):
        rad = np.zeros(rorder + 1)
        radw = np.zeros(rorder + 1)
        ang = np.zeros(aorder + 1)
        angw = np.zeros(aorder + 1)
        for j, d in nb[i]:
            r = np.linalg.norm(d)
            if r < rrc:
                t = np.polynomial.chebyshev.chebvander(2 * r / rrc - 1, rorder)[0]
                rad += t * fc_cos(r, rrc)
                radw += t * fc_cos(r, rrc) * spin[sym[j]]
        lst = nb[i]
        for a in range(len(lst)):
            for b in range(a + 1, len(lst)):
                j, dj = lst[a]
                k, dk = lst[b]
                rij, rik = np.linalg.norm(dj), np.linalg.norm(dk)
                if rij >= arc or rik >= arc:
                    continue
                cos = dj @ dk / (rij * rik)
                t = np.polynomial.chebyshev.chebvander(cos, aorder)[0]
                w = fc_cos(rij, arc) * fc_cos(rik, arc)
                ang += t * w
                angw += t * w * spin[sym[j]] * spin[sym[k]]
        row = list(rad) + list(ang)
        if multi:
            row += list(radw) + list(angw)
        rows.append(row)
    return rows
