"""Shared test fixtures: small periodic and non-periodic structures, shared data paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.spacegroup import crystal

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TIO2_ARCHIVE = SHARED / "aenet-TiO2" / "TiO2-xsf.tar.gz"
TIO2_REFERENCE_ENERGIES = {"O": -432.503149303, "Ti": -1604.604515075}

torch.set_num_threads(min(2, torch.get_num_threads()))


def rutile(rattle: float = 0.05, seed: int = 0) -> Atoms:
    """Rutile TiO2 (a = 4.594 Å, c = 2.959 Å, u = 0.305), slightly rattled."""
    atoms = crystal(["Ti", "O"], basis=[(0, 0, 0), (0.305, 0.305, 0)], spacegroup=136,
                    cellpar=[4.594, 4.594, 2.959, 90, 90, 90])
    if rattle:
        atoms.rattle(rattle, seed=seed)
    return atoms


def tio2_cluster(seed: int = 3) -> Atoms:
    """A non-periodic Ti3O6 cluster with atoms at least 1.6 Å apart."""
    rng = np.random.default_rng(seed)
    pos = []
    while len(pos) < 9:
        p = rng.uniform(0, 4.0, 3)
        if all(np.linalg.norm(p - q) > 1.6 for q in pos):
            pos.append(p)
    return Atoms("Ti3O6", positions=pos)


@pytest.fixture
def periodic_tio2() -> Atoms:
    return rutile()


@pytest.fixture
def cluster_tio2() -> Atoms:
    return tio2_cluster()


def require_shared(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared data {path} is not available (expected next to the repository)")
    return path


def pytest_sessionstart(session):
    """Start building the peers' programs (ænet, n2p2) in the background, once per cache."""
    from peer_tools import start_background_builds

    if not session.config.getoption("collectonly", False):
        start_background_builds()
