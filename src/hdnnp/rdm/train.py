r"""Training of the 1-RDM models (:mod:`hdnnp.rdm.models`) on a data set (atomic units).

Loss (``loss``): mean squared error of the 1-RDM entries in units of the training set's
standard deviation :math:`s`,
:math:`L = \langle(\gamma^\mathrm{pred}_{ij} - \gamma_{ij})^2\rangle / s^2` (``"mse"``,
default), or the mean absolute error :math:`\langle|\gamma^\mathrm{pred}_{ij} -
\gamma_{ij}|\rangle / s` (``"mae"``, the metric itself: it does not let a few systems
with large errors — e.g. symmetry-broken UHF inputs — dominate the fit).  Mini-batch
Adam; the learning rate halves when the validation error has not improved for
``patience`` epochs.  The systems are split once (seeded) into training,
validation and test sets (``split.json``); the **validation** MAE of γ chooses the epoch
(``best.pt``), the test set is evaluated once, at the end.

Metrics (``metrics.json``; Wetherell et al., Faraday Discuss. 224, 265 (2020)):

- ``rdm_mae``: :math:`\langle|\gamma^\mathrm{pred}(x_i, x_j) - \gamma(x_i, x_j)|\rangle`
  over all grid pairs and systems (bohr⁻¹);
- ``kinetic_rel_error``: mean of :math:`|T[\gamma^\mathrm{pred}] - T[\gamma]|/T[\gamma]`
  with :math:`T = -\tfrac12\int\partial_x^2\gamma|_{x'=x}dx` on the data set's stencil;
- ``occupation_mae``: mean absolute error of the four largest natural occupations per
  spin-orbital; ``occupation_violation``: the largest excursion outside [0, 1];
- ``density_mae`` (diag γ against n), ``trace_error`` (max |tr γ − 2|), ``asymmetry``.

The run directory follows :mod:`hdnnp.training.trainer`'s conventions: ``config.json``,
``log.jsonl`` (one line per epoch), ``checkpoint.pt`` (model, optimiser, scheduler,
log; written atomically every epoch, loaded with ``weights_only=True``), ``best.pt``,
``model.json`` (the model's specification and metrics, JSON), ``metrics.json``,
``predictions.npz`` (a few test systems, for the report) and ``report.html``.  Ctrl-C
stops after the current epoch and keeps the best model; ``resume=True`` continues from
the checkpoint (and may raise ``epochs``).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from hdnnp._version import __version__
from hdnnp.errors import HdnnpError
from hdnnp.fileio import atomic_path, atomic_write_text
from hdnnp.rdm.models import AUTOENCODERS, MODEL_KINDS, build_model
from hdnnp.rdm.solver import kinetic_energy_from_rdm, natural_orbitals

__all__ = ["RdmTrainConfig", "evaluate_rdm", "load_rdm_model", "train_rdm_model"]

MODEL_FORMAT = "hdnnp-rdm-model"
_RESUMABLE_KEYS = ("epochs", "time_limit_s")
LOSSES = ("mse", "mae")


@dataclass
class RdmTrainConfig:
    """Settings of one training run (see ``hdnnp rdm train --help``)."""

    model: str
    epochs: int = 200
    batch_size: int = 128
    learning_rate: float = 1e-3
    loss: str = "mse"
    hidden: tuple | None = None
    latent: int = 62
    components: int = 62
    orbitals: int = 12
    limit: int | None = None
    split: tuple = (0.8, 0.1, 0.1)
    seed: int = 0
    device: str = "auto"
    patience: int = 15
    time_limit_s: float | None = None
    examples: int = 12
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.model not in MODEL_KINDS:
            raise HdnnpError(f"unknown model {self.model!r} (one of {', '.join(MODEL_KINDS)})")
        for name in ("epochs", "batch_size", "latent", "components", "orbitals"):
            if int(getattr(self, name)) < 1:
                raise HdnnpError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.loss not in LOSSES:
            raise HdnnpError(f"unknown loss {self.loss!r} (one of {', '.join(LOSSES)})")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise HdnnpError(f"learning_rate must be > 0, got {self.learning_rate}")
        if len(self.split) != 3 or min(self.split) < 0 or sum(self.split) <= 0:
            raise HdnnpError(f"split needs three non-negative fractions, got {self.split}")
        self.split = tuple(float(f) for f in self.split)
        if self.hidden is not None:
            self.hidden = tuple(int(h) for h in self.hidden)


def _resolve_device(name: str) -> torch.device:
    from hdnnp.training.trainer import resolve_device

    return resolve_device(name)


def _split(n: int, fractions, seed: int) -> dict[str, np.ndarray]:
    f = np.asarray(fractions, dtype=float) / sum(fractions)
    perm = np.random.default_rng(np.random.SeedSequence([seed, 7919])).permutation(n)
    n_train, n_val = round(f[0] * n), round(f[1] * n)
    parts = {"train": perm[:n_train], "validation": perm[n_train:n_train + n_val],
             "test": perm[n_train + n_val:]}
    for name, idx in parts.items():
        if len(idx) == 0:
            raise HdnnpError(f"the {name} set is empty ({n} systems, split {fractions}); "
                             "use more systems or another split")
    return {k: np.sort(v) for k, v in parts.items()}


def _uhf_rdms(ds, run_dir: Path, progress: bool) -> np.ndarray:
    """UHF 1-RDMs of every system (cached in ``uhf.npz`` of the run directory)."""
    from tqdm.auto import tqdm

    from hdnnp.rdm.hartree_fock import solve_uhf
    from hdnnp.rdm.solver import Grid

    cache = run_dir / "uhf.npz"
    s = ds.provenance["settings"]
    # the cache belongs to these potentials and grid settings, not just to this count
    key = hashlib.sha256(np.ascontiguousarray(ds.potential).tobytes()
                         + json.dumps(s, sort_keys=True, default=str).encode()).hexdigest()
    if cache.is_file():
        with np.load(cache) as z:
            if "key" in z.files and str(z["key"]) == key and z["rdm"].shape == ds.rdm.shape:
                return z["rdm"]
    grid = Grid(int(s["points"]), float(s["half_width"]), int(s["stencil"]))
    out = np.empty_like(ds.rdm)
    for k in tqdm(range(len(ds)), desc="UHF", unit="system", disable=not progress):
        out[k] = solve_uhf(ds.potential[k], grid, float(s["interaction"])).rdm
    with atomic_path(cache) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, rdm=out, key=np.array(key))
    return out


def _model_spec(cfg: RdmTrainConfig, points: int, inputs_train: np.ndarray):
    """The model's settings and, for the PCA models, the PCA of the training inputs (fitted
    once: it sets the number of input components and then the model's input basis)."""
    pca = None
    spec = {"kind": cfg.model, "points": points, "hidden": list(cfg.hidden or []),
            "latent": cfg.latent, "components": cfg.components, "orbitals": cfg.orbitals}
    if cfg.model in ("pca", "uhf-pca"):
        from hdnnp.rdm.pca import (
            FLOAT32_PRECISION,
            components_for_tolerance,
            fit_pca,
            rdm_features,
        )

        x = inputs_train if cfg.model == "pca" else rdm_features(inputs_train)
        pca = fit_pca(x)
        k = components_for_tolerance(pca.variances, FLOAT32_PRECISION)
        spec["components_in"] = int(max(1, min(k, 2 * cfg.components, x.shape[1])))
        f = points * (points + 1) // 2
        if cfg.components > f:
            raise HdnnpError(f"--components {cfg.components} exceeds the {f} entries")
    return spec, pca


def _predict(model, inputs: np.ndarray, device, batch: int = 512) -> np.ndarray:
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(inputs), batch):
            x = torch.as_tensor(inputs[start:start + batch], dtype=torch.float64,
                                device=device)
            out.append(model(x).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0,))


def evaluate_rdm(pred: np.ndarray, rdm: np.ndarray, density: np.ndarray, kinetic: np.ndarray,
                 dx: float, stencil: int, occupations: np.ndarray | None = None) -> dict:
    """The metrics of the module docstring for predicted 1-RDMs ``pred``."""
    t_pred = kinetic_energy_from_rdm(pred, dx, stencil)
    occ_pred = natural_orbitals(pred, dx)[0]
    if occupations is None:
        occupations = natural_orbitals(rdm, dx)[0]
    diag = np.diagonal(pred, axis1=-2, axis2=-1)
    return {
        "systems": len(pred),
        "rdm_mae": float(np.mean(np.abs(pred - rdm))),
        "rdm_max_error": float(np.max(np.abs(pred - rdm))),
        "kinetic_rel_error": float(np.mean(np.abs(t_pred - kinetic) / np.abs(kinetic))),
        "kinetic_mae": float(np.mean(np.abs(t_pred - kinetic))),
        "occupation_mae": float(np.mean(np.abs(occ_pred[:, :4] - occupations[:, :4]))),
        "occupation_violation": float(max(0.0, occ_pred.max() - 1.0, -occ_pred.min())),
        "density_mae": float(np.mean(np.abs(diag - density))),
        "trace_error": float(np.max(np.abs(diag.sum(axis=-1) * dx - 2.0))),
        "asymmetry": float(np.max(np.abs(pred - np.swapaxes(pred, -1, -2)))),
    }


def _save_state(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _load_state(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable file is a user error
        raise HdnnpError(f"{path}: cannot read ({type(exc).__name__}: {exc})") from None


def load_rdm_model(run_dir: str | Path, device: str = "cpu"):
    """(model with the best weights, model.json contents) of a training run."""
    run_dir = Path(run_dir)
    meta_path = run_dir / "model.json"
    if not meta_path.is_file():
        raise HdnnpError(f"{meta_path}: no such model file (is {run_dir} a finished "
                         "'hdnnp rdm train' run?)")
    try:
        meta = json.loads(meta_path.read_text())
        spec = meta["spec"]
    except (ValueError, KeyError) as exc:
        raise HdnnpError(f"{meta_path}: not an hdnnp 1-RDM model ({exc})") from None
    if meta.get("format") != MODEL_FORMAT:
        raise HdnnpError(f"{meta_path}: not an hdnnp 1-RDM model file")
    model = build_model(spec)
    try:
        model.load_state_dict(_load_state(run_dir / "best.pt"))
    except RuntimeError as exc:
        raise HdnnpError(f"{run_dir / 'best.pt'}: does not fit model.json ({exc})") from None
    return model.to(_resolve_device(device)), meta


def train_rdm_model(data: str | Path, run_dir: str | Path, cfg: RdmTrainConfig,
                    resume: bool = False, progress: bool = True, report: bool = True) -> dict:
    """Train one model; returns the metrics (``metrics.json``)."""
    from tqdm.auto import tqdm

    from hdnnp.rdm.generate import load_dataset

    run_dir = Path(run_dir)
    ckpt_path = run_dir / "checkpoint.pt"
    if resume:
        if not ckpt_path.is_file():
            raise HdnnpError(f"{ckpt_path}: nothing to resume")
        old = json.loads((run_dir / "config.json").read_text())
        new = asdict(cfg)
        differ = [k for k in new if k not in _RESUMABLE_KEYS
                  and json.loads(json.dumps(new[k])) != old.get(k)]
        if differ:
            raise HdnnpError(f"{run_dir}: --resume with other settings ({', '.join(differ)})")
    elif ckpt_path.is_file() or (run_dir / "model.json").is_file():
        raise HdnnpError(f"{run_dir} already holds a run; use --resume or another directory")
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.json", json.dumps(asdict(cfg), indent=1))

    ds = load_dataset(data, limit=cfg.limit)
    points, dx, stencil = ds.rdm.shape[-1], ds.dx, ds.stencil
    splits = _split(len(ds), cfg.split, cfg.seed)
    atomic_write_text(run_dir / "split.json",
                      json.dumps({k: v.tolist() for k, v in splits.items()}))
    if cfg.model in AUTOENCODERS:
        inputs = ds.rdm
    elif cfg.model == "uhf-pca":
        inputs = _uhf_rdms(ds, run_dir, progress)
    else:
        inputs = ds.density
    tr, va, te = splits["train"], splits["validation"], splits["test"]
    torch.manual_seed(cfg.seed)
    spec, input_pca = _model_spec(cfg, points, inputs[tr])
    model = build_model(spec)
    model.fit_normalisation(inputs[tr], ds.rdm[tr], input_pca=input_pca)
    device = _resolve_device(cfg.device)
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=cfg.patience)
    log: list[dict] = []
    best = {"epoch": 0, "validation_rdm_mae": math.inf}
    start_epoch = 1
    if resume:
        state = _load_state(ckpt_path)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        log = json.loads(state["log"])
        best = json.loads(state["best"])
        start_epoch = int(state["epoch"]) + 1

    x_tr = torch.as_tensor(inputs[tr], dtype=torch.float64, device=device)
    y_tr = torch.as_tensor(ds.rdm[tr], dtype=torch.float64, device=device)
    scale = float(model.rdm_scale)

    def batch_loss(pred, target):
        if cfg.loss == "mae":
            return torch.mean(torch.abs(pred - target)) / scale
        return torch.mean((pred - target) ** 2) / scale**2

    stop_reason = "epochs"
    t0 = time.perf_counter()
    bar = tqdm(range(start_epoch, cfg.epochs + 1), desc=f"rdm train {cfg.model}",
               unit="epoch", disable=not progress)
    try:
        for epoch in bar:
            t_epoch = time.perf_counter()
            model.train()
            gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
            order = torch.randperm(len(tr), generator=gen).to(device)
            total = 0.0
            for start in range(0, len(tr), cfg.batch_size):
                idx = order[start:start + cfg.batch_size]
                opt.zero_grad()
                loss = batch_loss(model(x_tr[idx]), y_tr[idx])
                if not torch.isfinite(loss):
                    raise HdnnpError(f"the loss became non-finite at epoch {epoch}; lower "
                                     "--learning-rate")
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
            val_mae = float(np.mean(np.abs(_predict(model, inputs[va], device) - ds.rdm[va])))
            sched.step(val_mae)
            rec = {"epoch": epoch, "train_loss": total / len(tr),
                   "validation_rdm_mae": val_mae, "learning_rate": opt.param_groups[0]["lr"],
                   "epoch_s": time.perf_counter() - t_epoch,
                   "time_s": time.perf_counter() - t0}
            log.append(rec)
            if val_mae < best["validation_rdm_mae"]:
                best = {"epoch": epoch, "validation_rdm_mae": val_mae}
                _save_state(run_dir / "best.pt", model.state_dict())
            _save_state(ckpt_path, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                    "scheduler": sched.state_dict(), "epoch": epoch,
                                    "log": json.dumps(log), "best": json.dumps(best)})
            atomic_write_text(run_dir / "log.jsonl",
                              "".join(json.dumps(r) + "\n" for r in log))
            bar.set_postfix(val_mae=f"{val_mae:.2e}", best=f"{best['validation_rdm_mae']:.2e}")
            if cfg.time_limit_s and time.perf_counter() - t0 > cfg.time_limit_s:
                stop_reason = "time_limit"
                break
    except KeyboardInterrupt:
        stop_reason = "interrupted"
    finally:
        bar.close()
    if best["epoch"] == 0:
        raise HdnnpError("no epoch finished; nothing to evaluate")

    model.load_state_dict(_load_state(run_dir / "best.pt"))
    pred = _predict(model, inputs[te], device)
    test = evaluate_rdm(pred, ds.rdm[te], ds.density[te], ds.energies["kinetic"][te], dx,
                        stencil, ds.occupations[te])
    val = evaluate_rdm(_predict(model, inputs[va], device), ds.rdm[va], ds.density[va],
                       ds.energies["kinetic"][va], dx, stencil, ds.occupations[va])
    metrics = {"model": cfg.model, "best_epoch": best["epoch"],
               "epochs_run": len(log), "stop_reason": stop_reason,
               "train_systems": len(tr), "validation_systems": len(va),
               "test_systems": len(te), "parameters": sum(p.numel() for p in
                                                          model.parameters()),
               "validation": val, "test": test, "train_time_s": sum(
                   r["epoch_s"] for r in log)}
    if cfg.model == "uhf-pca":
        metrics["uhf_baseline_test"] = evaluate_rdm(
            inputs[te], ds.rdm[te], ds.density[te], ds.energies["kinetic"][te], dx, stencil,
            ds.occupations[te])
    k = min(cfg.examples, len(te))
    with atomic_path(run_dir / "predictions.npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, x=ds.x, index=te[:k], rdm=ds.rdm[te[:k]], predicted=pred[:k],
                     density=ds.density[te[:k]], occupations=ds.occupations[te[:k]],
                     predicted_occupations=natural_orbitals(pred[:k], dx)[0])
    atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=1))
    meta = {"format": MODEL_FORMAT, "version": 1, "hdnnp": __version__,
            "torch": torch.__version__, "spec": spec, "weights": "best.pt",
            "units": "atomic units (Hartree, bohr); gamma in 1/bohr",
            "data": {"path": str(data), "settings": ds.provenance.get("settings")},
            "config": asdict(cfg), "metrics": metrics}
    atomic_write_text(run_dir / "model.json", json.dumps(meta, indent=1))
    if report:
        from hdnnp.rdm.report import write_run_report

        write_run_report(run_dir)
    return metrics
