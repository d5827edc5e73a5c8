"""Flat tables of the spike algorithm, shared by every candidate technology."""

from __future__ import annotations

import numpy as np


def prepare(t, ns=2):
    centers = np.repeat(np.arange(len(t["species"])), np.diff(t["offsets"]))
    perm = np.lexsort((t["nspec"], centers))
    t["perm"] = perm
    t["vec_sorted"] = np.ascontiguousarray(t["vec"][perm])
    sp = t["nspec"][perm]
    n = len(t["species"])
    sp_off = np.zeros((n, ns + 1), dtype=np.int64)
    counts = np.zeros((n, ns), dtype=np.int64)
    np.add.at(counts, (centers[perm], sp), 1)
    sp_off[:, 0] = t["offsets"][:-1]
    sp_off[:, 1:] = t["offsets"][:-1, None] + np.cumsum(counts, 1)
    t["sp_off"] = sp_off

    rad = t["rad"]
    rad = rad[np.lexsort((rad[:, 1], rad[:, 0]))]
    rad_off = np.zeros((ns, ns + 1), dtype=np.int64)
    for c in range(ns):
        for s in range(ns + 1):
            rad_off[c, s] = int(np.sum((rad[:, 0] < c) | ((rad[:, 0] == c) & (rad[:, 1] < s))))
    t["rad_t"] = np.ascontiguousarray(rad[:, 2:5])
    t["rad_off"] = rad_off

    ang = t["ang"]
    gr_off = -np.ones((ns, ns, ns), dtype=np.int64)
    etas, g_eta, g_lz, lz, terms = [], [], [], [], []
    for c in range(ns):
        for lo in range(ns):
            for hi in range(lo, ns):
                rows = ang[(ang[:, 0] == c) & (ang[:, 1] == lo) & (ang[:, 2] == hi)]
                if not len(rows):
                    continue
                assert np.all(rows[:, 6] == 0.0)
                gr_off[c, lo, hi] = len(g_eta)
                de = sorted(set(rows[:, 3].tolist()))
                dl = sorted(set(map(tuple, rows[:, 4:6].tolist())))
                g_eta.append((len(etas), len(de)))
                etas.extend(de)
                g_lz.append((len(lz), len(dl), len(terms), len(terms) + len(rows)))
                lz.extend(dl)
                for row in rows:
                    terms.append((de.index(row[3]), dl.index(tuple(row[4:6])),
                                  2.0 ** (1.0 - row[5]), row[7]))
    t["etas"] = np.array(etas)
    t["g_eta"] = np.array(g_eta, dtype=np.int64)
    t["g_lz"] = np.array(g_lz, dtype=np.int64)
    t["lz"] = np.array(lz)
    t["terms"] = np.array(terms)
    t["gr_off"] = gr_off
    t["nf"] = 30
