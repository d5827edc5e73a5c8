r"""Training of a :class:`~hdnnp.model.NeuralNetworkPotential` on energies and forces.

Loss (per mini-batch, eV and Å units):

.. math::

    L = w_E \Big\langle \Big(\frac{E^\mathrm{NN}_s - E^\mathrm{ref}_s}{N_s}\Big)^2 \Big\rangle_s
      + w_F \big\langle (F^\mathrm{NN}_{a\alpha} - F^\mathrm{ref}_{a\alpha})^2 \big\rangle_{a\alpha}

with the force term over the atoms of the structures selected for force training
(``force_fraction``, as aenet-PyTorch does).  Forces come from the stored pair
Jacobians (:mod:`hdnnp.training.featureset`).  Optimisers: mini-batch Adam (cosine
learning-rate schedule), full-batch L-BFGS with strong-Wolfe line search (ænet's
default method), and gradient descent with momentum (``sgd``; batch size 1 is ænet's
"online" training).

A run directory holds ``config.json``, ``log.jsonl`` (one line per epoch),
``checkpoint.pt`` (written atomically every epoch; loaded with
``weights_only=True``), ``model.json`` (the best potential so far, by test loss),
``split.json``, ``test.extxyz``, and at the end ``predictions.npz``, ``metrics.json``
and the report figures.  ``Ctrl-C`` stops after the current step, keeping the best
model; ``resume=True`` continues from the checkpoint.  An interrupted run returns metrics
with ``stop_reason="interrupted"`` and ``model`` (the best model's path, None if no
epoch finished); :func:`raise_if_interrupted` turns that into
:class:`TrainingInterrupted`, which the command line reports in one line with exit
status 130.

Guards against a run that only looks successful: the labels (energies, forces,
reference energies) must be finite before any descriptor is computed (one line naming
the structure's ``info["source"]``); a run needs at least one epoch; and a loss that
becomes non-finite before any epoch improved the model is an error (no untrained model
is written, the exit status is not 0).  Since the labels are known to be finite, a
non-finite loss means the optimisation diverged, and the message says so.
"""

from __future__ import annotations

import copy
import json
import math
import platform
import time
from pathlib import Path

import numpy as np
import torch

from hdnnp import __version__
from hdnnp.data import Dataset, load_datasets
from hdnnp.descriptors import default_descriptor, descriptor_from_config
from hdnnp.errors import HdnnpError
from hdnnp.fileio import atomic_path, atomic_write_text
from hdnnp.model import NeuralNetworkPotential
from hdnnp.potential import save_potential
from hdnnp.training.config import TrainConfig
from hdnnp.training.featureset import FeatureSet, TrainingBatch
from hdnnp.training.losses import ErrorAccumulator, batch_predictions, loss_value
from hdnnp.training.second_order import KalmanFilter, LevenbergMarquardt, LossWeights


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped by Ctrl-C; the message says where the best model so far is."""

    def __init__(self, message: str, model: str | None = None):
        super().__init__(message)
        self.model = model

    def __reduce__(self):  # crosses process boundaries (committee workers)
        return (self.__class__, (str(self), self.model))


def raise_if_interrupted(metrics: dict, run_dir: str | Path | None = None) -> None:
    """Raise :class:`TrainingInterrupted` if ``metrics`` are those of an interrupted run."""
    if metrics.get("stop_reason") != "interrupted":
        return
    model = metrics.get("model")
    where = f" {run_dir}" if run_dir is not None else ""
    if model:
        msg = (f"best model so far (epoch {metrics.get('best_epoch')}): {model}; continue "
               f"with 'hdnnp train --resume{where}'")
    else:
        msg = f"no epoch finished, no model written; continue with 'hdnnp train --resume{where}'"
    raise TrainingInterrupted(msg, model)


def check_finite_labels(ds: Dataset, what: str = "training") -> None:
    """Raise :class:`HdnnpError` naming the first structure with a non-finite label.

    Checked before any descriptor is computed: a NaN or inf energy, force or reference
    energy would otherwise surface epochs later as a non-finite loss (and look like a
    learning-rate problem).  Structures are named by ``info["source"]``.
    """
    for el, value in ds.reference_energies.items():
        if not math.isfinite(float(value)):
            raise HdnnpError(f"the reference energy of {el} is {value}; reference energies "
                             "must be finite numbers (eV)")
    energies = ds.energies
    bad = np.flatnonzero(~np.isfinite(energies))
    if bad.size:
        raise HdnnpError(f"{ds.names[bad[0]]}: reference energy is {energies[bad[0]]} "
                         f"({bad.size} {what} structure(s) with a non-finite energy)")
    for k in range(len(ds)):
        forces = ds.forces(k)
        if forces is not None and not np.isfinite(forces).all():
            atom = int(np.flatnonzero(~np.isfinite(forces).all(axis=1))[0])
            raise HdnnpError(f"{ds.names[k]}: reference force on atom {atom + 1} is "
                             f"{forces[atom].tolist()} (non-finite; {what} set)")


ENERGY_KEYS = ("energy_mae_meV_per_atom", "energy_rmse_meV_per_atom")
FORCE_KEYS = ("force_mae_meV_per_A", "force_rmse_meV_per_A")


# --------------------------------------------------------------------------- data
def prepare_data(cfg: TrainConfig) -> tuple[Dataset, Dataset, dict]:
    """Training and test sets after filtering, sampling and splitting, plus a summary."""
    dc = cfg.data
    if not dc.train:
        raise HdnnpError("no training data given (data.train is empty)")
    ds = load_datasets(dc.train, dc.format, dc.length_unit, dc.energy_unit,
                       require_energies=True)
    if dc.reference_energies is not None:
        ds.reference_energies = {k: float(v) for k, v in dc.reference_energies.items()}
    missing = [e for e in ds.elements if e not in ds.reference_energies]
    if ds.reference_energies and missing:
        raise HdnnpError(f"reference energies missing for element(s) {', '.join(missing)}")
    info = {"read": len(ds)}
    if dc.max_energy_above_min is not None:
        ds = ds.filter_energy(dc.max_energy_above_min, relative_to_minimum=True)
        info["after_energy_cap"] = len(ds)
    if dc.max_energy_per_atom is not None:
        ds = ds.filter_energy(dc.max_energy_per_atom)
        info["after_energy_cap"] = len(ds)
    if dc.n_structures is not None:
        ds = ds.sample(dc.n_structures, seed=dc.seed)
    if dc.test:
        test = load_datasets(dc.test, dc.format, dc.length_unit, dc.energy_unit,
                             require_energies=True)
        test.reference_energies = dict(ds.reference_energies)
        train = ds
    else:
        train, test = ds.split(dc.test_fraction, seed=dc.seed)
    info.update(n_train=len(train), n_test=len(test))
    return train, test, info


def build_descriptor(cfg: TrainConfig, elements):
    d = dict(cfg.descriptor)
    if "cutoff" in d and "size" in d and set(d) <= {"kind", "cutoff", "size"}:
        return default_descriptor(d["kind"], elements, float(d["cutoff"]), int(d["size"]))
    d.setdefault("elements", list(elements))
    missing = set(elements) - set(d["elements"])
    if missing:
        raise HdnnpError(f"the descriptor does not cover element(s) {', '.join(sorted(missing))}")
    return descriptor_from_config(d)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise HdnnpError(f"unknown device {name!r} ({exc})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise HdnnpError("device 'cuda' requested but CUDA is not available")
    return dev


# --------------------------------------------------------------- normalisation
@torch.no_grad()
def fit_normalisation(model: NeuralNetworkPotential, fs: FeatureSet, dataset: Dataset) -> dict:
    r"""Input standardisation, feature ranges and energy scale/shift from training data.

    Per element: :math:`\mu, \sigma` of every feature (features with
    :math:`\sigma < 10^{-8}` are only shifted).  Energy: per-element shifts :math:`b_Z`
    from a least-squares fit :math:`E_\mathrm{coh,s} \approx \sum_Z N_{sZ} b_Z` and
    a scale :math:`s` equal to the standard deviation of the per-atom residual.
    """
    info = {}
    for k, e in enumerate(model.elements):
        net = model.networks[e]
        rows = fs.features[fs.species == k][:, : net.n_inputs].double()
        if rows.shape[0] == 0:
            continue
        mean, std = rows.mean(0), rows.std(0, unbiased=False)
        net.input_shift.copy_(mean)
        net.input_scale.copy_(torch.where(std > 1e-8, 1.0 / std.clamp_min(1e-300),
                                          torch.ones_like(std)))
        net.feature_min.copy_(rows.min(0).values)
        net.feature_max.copy_(rows.max(0).values)
    counts = np.zeros((len(dataset), len(model.elements)))
    index = {e: k for k, e in enumerate(model.elements)}
    for s, atoms in enumerate(dataset):
        for sym in atoms.get_chemical_symbols():
            counts[s, index[sym]] += 1
    e_coh = dataset.energies - counts @ model.reference_energies.cpu().numpy()
    shift, *_ = np.linalg.lstsq(counts, e_coh, rcond=None)
    resid = (e_coh - counts @ shift) / counts.sum(1)
    scale = float(np.std(resid)) if len(resid) > 1 else 1.0
    scale = scale if scale > 1e-6 else 1.0
    for k, e in enumerate(model.elements):
        model.networks[e].output_shift.fill_(float(shift[k]))
        model.networks[e].output_scale.fill_(scale)
    info["energy_shift_eV"] = {e: float(shift[k]) for k, e in enumerate(model.elements)}
    info["energy_scale_eV"] = scale
    return info


# --------------------------------------------------------------------- trainer
class Trainer:
    """Train a potential as configured by a :class:`~hdnnp.training.config.TrainConfig`.

    Example::

        >>> cfg = TrainConfig.from_dict({"data": {"train": ["data.xyz"]},   # doctest: +SKIP
        ...                              "training": {"epochs": 50}})
        >>> Trainer(cfg).run()                                              # doctest: +SKIP
    """

    def __init__(self, cfg: TrainConfig, resume: bool = False, progress: bool = True,
                 log=print, epochs: int | None = None):
        self.cfg = cfg
        self.run_dir = Path(cfg.output)
        self.resume = resume
        #: with ``resume``: run until this many epochs of the main optimizer (extends a
        #: finished run; the log continues without a gap or a repeated epoch)
        self.resume_epochs = epochs
        self.progress = progress
        self.log = log or (lambda *a, **k: None)
        oc = cfg.training  # ranges (epochs, fractions, committee, ...): the schema's
        self.device = resolve_device(oc.device)
        self.dtype = getattr(torch, oc.dtype)
        self.jacobian_dtype = getattr(torch, oc.jacobian_dtype)

    # -------------------------------------------------------------- set-up
    def _setup(self):
        cfg, oc = self.cfg, self.cfg.training
        if oc.threads:
            torch.set_num_threads(int(oc.threads))
        t0 = time.perf_counter()
        self.train_ds, self.test_ds, self.data_info = prepare_data(cfg)
        if len(self.train_ds) == 0:
            raise HdnnpError("the training set is empty")
        check_finite_labels(self.train_ds, "training")
        check_finite_labels(self.test_ds, "test")
        elements = self.train_ds.elements
        if len(self.test_ds):
            extra = set(self.test_ds.elements) - set(elements)
            if extra:
                raise HdnnpError(f"test set has element(s) {', '.join(sorted(extra))} that are "
                                 "not in the training set")
        descriptor = build_descriptor(cfg, elements)
        torch.manual_seed(oc.seed)
        self.model = NeuralNetworkPotential(
            descriptor, cfg.network.hidden, cfg.network.activation,
            reference_energies=self.train_ds.reference_energies).to(self.device, self.dtype)
        gen = torch.Generator().manual_seed(oc.seed)
        for e in self.model.elements:
            self.model.networks[e].reset_parameters(gen)

        rng = np.random.default_rng(oc.seed)
        has_f = self.train_ds.has_forces
        force_mask = np.zeros(len(self.train_ds), dtype=bool)
        if oc.force_weight > 0 and oc.force_fraction > 0 and has_f.any():
            cand = np.flatnonzero(has_f)
            n_f = round(oc.force_fraction * len(cand))
            force_mask[np.sort(rng.choice(cand, size=n_f, replace=False))] = True
        self.train_force_mask = force_mask
        test_mask = self.test_ds.has_forces if oc.force_weight > 0 else np.zeros(
            len(self.test_ds), bool)
        self.log(f"data: {self.data_info}; force structures: {int(force_mask.sum())} train, "
                 f"{int(test_mask.sum())} test")
        kw = dict(dtype=self.dtype, jacobian_dtype=self.jacobian_dtype, device=self.device,
                  progress=self.progress)
        self.train_fs = FeatureSet(descriptor, self.train_ds, force_mask, desc="train descriptors",
                                   **kw)
        self.test_fs = (FeatureSet(descriptor, self.test_ds, test_mask, desc="test descriptors",
                                   **kw) if len(self.test_ds) else None)
        mem = self.train_fs.memory_bytes() + (self.test_fs.memory_bytes() if self.test_fs else 0)
        self.setup_s = time.perf_counter() - t0
        self.log(f"descriptors: {descriptor.kind}, {descriptor.max_features} features, cutoff "
                 f"{descriptor.cutoff:.2f} Å; stored {mem / 2**20:.0f} MiB in {self.setup_s:.1f} s")
        self.norm_info = fit_normalisation(self.model, self.train_fs, self.train_ds)
        if oc.init_model:
            self._load_initial_model(oc.init_model)
        self.rng = rng

    def _extend(self, epochs: int) -> None:
        """Set the main optimizer's epochs of a resumed run (refused where it cannot apply)."""
        oc = self.cfg.training
        if oc.committee > 1:
            raise HdnnpError(f"{self.run_dir}: --epochs cannot extend a committee run yet; "
                             "resume it without --epochs")
        if oc.refine_epochs:
            raise HdnnpError(f"{self.run_dir}: --epochs cannot extend a run with an L-BFGS "
                             f"refinement (refine_epochs = {oc.refine_epochs} follow the main "
                             "epochs); start a new run with --init-model")
        try:
            oc.epochs = epochs
        except Exception as exc:  # pydantic's ValidationError: the schema's range
            raise HdnnpError(f"--epochs {epochs}: {str(exc).splitlines()[-1].strip()}") \
                from None

    def _load_initial_model(self, path) -> None:
        """Copy weights and normalisation from a potential with the same set-up."""
        from hdnnp.potential import load_potential

        init = load_potential(path)
        if init.elements != self.model.elements or \
                init.descriptor.to_config() != self.model.descriptor.to_config():
            raise HdnnpError(f"{path}: its elements/descriptor differ from this training's; "
                             "it cannot be the starting point")
        try:
            self.model.load_state_dict(init.to(self.device, self.dtype).state_dict())
        except RuntimeError as exc:
            raise HdnnpError(f"{path}: network architecture differs ({exc})") from None
        self.norm_info["init_model"] = str(path)

    def _kind(self, epoch: int) -> str:
        """The optimiser of an epoch: the main one, then L-BFGS in the refinement."""
        oc = self.cfg.training
        return oc.optimizer if epoch <= oc.epochs else "lbfgs"

    def _make_optimizer(self, kind: str):
        oc = self.cfg.training
        params = list(self.model.parameters())
        weights = LossWeights(oc.energy_weight, oc.force_weight)
        if kind == "lm":
            return LevenbergMarquardt(self.model, weights, mu=oc.lm_mu,
                                      mu_increase=oc.lm_mu_increase,
                                      mu_decrease=oc.lm_mu_decrease,
                                      force_rows=oc.lm_force_rows, subset=oc.lm_subset,
                                      block_atoms=oc.lm_block_atoms)
        if kind == "kalman":
            return KalmanFilter(self.model, weights, kalman_type=oc.kalman_type,
                                epsilon=oc.kalman_epsilon, q0=oc.kalman_q0,
                                qtau=oc.kalman_qtau, qmin=oc.kalman_qmin, eta=oc.kalman_eta,
                                etatau=oc.kalman_etatau, etamax=oc.kalman_etamax,
                                lambda_=oc.kalman_lambda_short, nu=oc.kalman_nue_short,
                                streams=oc.kalman_streams,
                                force_fraction=oc.kalman_force_fraction)
        if kind == "adam":
            opt = torch.optim.Adam(params, lr=oc.learning_rate, weight_decay=oc.weight_decay)
        elif kind == "sgd":
            opt = torch.optim.SGD(params, lr=oc.learning_rate, momentum=oc.momentum,
                                  weight_decay=oc.weight_decay)
        else:
            # max_eval bounds the line search too (torch passes max_eval - evaluations
            # so far as its budget): allow 25 evaluations per iteration
            opt = torch.optim.LBFGS(params, lr=1.0, max_iter=oc.lbfgs_iterations_per_epoch,
                                    max_eval=25 * oc.lbfgs_iterations_per_epoch,
                                    history_size=oc.lbfgs_history,
                                    line_search_fn="strong_wolfe", tolerance_grad=1e-12,
                                    tolerance_change=1e-15)
        return opt

    def _lr_at(self, epoch: int) -> float | None:
        oc = self.cfg.training
        if self._kind(epoch) in ("lbfgs", "lm", "kalman"):
            return None
        if oc.learning_rate_final is None:
            return oc.learning_rate
        frac = min(1.0, (epoch - 1) / max(1, oc.epochs - 1))
        return oc.learning_rate_final + 0.5 * (oc.learning_rate - oc.learning_rate_final) * (
            1 + math.cos(math.pi * frac))

    # ------------------------------------------------------------ one epoch
    def _loss(self, tb: TrainingBatch, acc: ErrorAccumulator | None):
        oc = self.cfg.training
        use_f = oc.force_weight > 0
        energy, forces = batch_predictions(self.model, tb, use_f, create_graph=True)
        de = (energy - tb.energy) / tb.n_atoms
        loss = oc.energy_weight * (de * de).mean()
        if forces is not None:
            df = forces[tb.force_atoms] - tb.forces[tb.force_atoms].to(forces.dtype)
            loss = loss + oc.force_weight * (df * df).mean()
        if acc is not None:
            acc.add(energy, forces, tb)
        return loss

    def _epoch(self, opt, epoch: int) -> tuple[float, dict]:
        oc = self.cfg.training
        self.model.train()
        lr = self._lr_at(epoch)
        if lr is not None:
            for group in opt.param_groups:
                group["lr"] = lr
        if self._kind(epoch) in ("lm", "kalman"):
            return opt.epoch(self.train_fs, self.rng)
        acc = ErrorAccumulator()
        if self._kind(epoch) == "lbfgs":
            tb = self.train_fs.batch()
            state = {}

            def closure():
                opt.zero_grad()
                a = ErrorAccumulator()
                loss = self._loss(tb, a)
                loss.backward()
                # report the point the epoch starts from (later calls are line-search trials)
                state.setdefault("start", (float(loss.detach()), a))
                return loss

            opt.step(closure)
            loss, acc = state["start"]
            return loss, acc.result()
        n = len(self.train_fs)
        order = self.rng.permutation(n)
        total, count = 0.0, 0
        for start in range(0, n, oc.batch_size):
            idx = np.sort(order[start:start + oc.batch_size])
            tb = self.train_fs.batch(idx)
            opt.zero_grad()
            loss = self._loss(tb, acc)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        return total / max(count, 1), acc.result()

    def _evaluate(self, fs: FeatureSet | None) -> dict:
        if fs is None or len(fs) == 0:
            return {}
        self.model.eval()
        acc = ErrorAccumulator()
        n = len(fs)
        step = max(1, self.cfg.training.batch_size * 8)
        chunks = [None] if n <= step else [np.arange(s, min(n, s + step))
                                           for s in range(0, n, step)]
        for idx in chunks:
            tb = fs.batch(idx)
            energy, forces = batch_predictions(self.model, tb, True, create_graph=False)
            acc.add(energy, forces, tb)
        return acc.result()

    # ----------------------------------------------------------- checkpoint
    def _save_checkpoint(self, opt, epoch, best, extra):
        state = {
            "epoch": epoch,
            "model": self.model.state_dict(),
            "optimizer": opt.state_dict(),
            "optimizer_kind": self._kind(epoch),
            "best_model": best["state"],
            "best_loss": best["loss"],
            "best_epoch": best["epoch"],
            "bad_epochs": best["bad"],
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": json.dumps(self.rng.bit_generator.state),
            "elapsed_s": extra["elapsed"],
        }
        with atomic_path(self.run_dir / "checkpoint.pt") as tmp:
            torch.save(state, tmp)

    def _load_checkpoint(self):
        path = self.run_dir / "checkpoint.pt"
        if not path.exists():
            raise HdnnpError(f"{path}: no checkpoint to resume from")
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)
        except Exception as exc:  # torch raises various errors for damaged files
            raise HdnnpError(f"{path}: cannot read checkpoint ({exc.__class__.__name__})") from None
        self.model.load_state_dict(state["model"])
        epoch = int(state["epoch"])
        opt = self._make_optimizer(self._kind(epoch + 1))
        if state.get("optimizer_kind", self._kind(epoch)) == self._kind(epoch + 1):
            opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"].cpu())
        self.rng.bit_generator.state = json.loads(state["numpy_rng"])
        best = {"state": state["best_model"], "loss": state["best_loss"],
                "epoch": state["best_epoch"], "bad": state["bad_epochs"]}
        return opt, epoch, best, float(state.get("elapsed_s", 0.0))

    # ------------------------------------------------------------ provenance
    def _provenance(self, best, elapsed, metrics=None) -> dict:
        oc = self.cfg.training
        prov = {
            "data": list(self.cfg.data.train),
            "data_selection": self.data_info,
            "n_train": len(self.train_ds),
            "n_test": len(self.test_ds),
            "n_force_structures": int(self.train_force_mask.sum()),
            "seed": oc.seed,
            "data_seed": self.cfg.data.seed,
            "optimizer": oc.optimizer,
            "epochs": best.get("last_epoch"),
            "best_epoch": best["epoch"],
            "wall_s": round(elapsed, 2),
            "normalisation": self.norm_info,
            "config": self.cfg.to_dict(),
            "hdnnp_version": __version__,
            "torch_version": torch.__version__,
            "python": platform.python_version(),
            "device": str(self.device),
        }
        if metrics:
            prov.update({k: v for k, v in metrics.items() if isinstance(v, int | float)})
        return prov

    # ------------------------------------------------------------------- run
    def run(self) -> dict:
        """Train; returns the final metrics (also written to ``metrics.json``)."""
        run_dir = self.run_dir
        if self.resume:
            saved = run_dir / "config.json"
            if saved.exists():
                self.cfg = TrainConfig.from_dict(json.loads(saved.read_text()), str(saved))
                self.cfg.output = str(run_dir)  # where it is now, not where it was started
            if self.resume_epochs is not None:
                self._extend(self.resume_epochs)
        cfg, oc = self.cfg, self.cfg.training
        if oc.committee > 1:
            from hdnnp.training.committee import train_committee

            return train_committee(cfg, resume=self.resume, progress=self.progress,
                                   log=self.log)
        log_path = run_dir / "log.jsonl"
        if run_dir.exists() and (run_dir / "checkpoint.pt").exists() and not self.resume:
            raise HdnnpError(f"{run_dir} already holds a training run; use --resume to continue "
                             "it or choose another output directory")
        run_dir.mkdir(parents=True, exist_ok=True)
        run_start = time.perf_counter()
        self._setup()
        atomic_write_text(run_dir / "config.json", json.dumps(cfg.to_dict(), indent=2))
        write_split(run_dir, self.train_ds, self.test_ds)

        opt = self._make_optimizer(oc.optimizer)
        start_epoch, elapsed = 0, 0.0
        best = {"state": copy.deepcopy(self.model.state_dict()), "loss": float("inf"),
                "epoch": 0, "bad": 0}
        log_lines: list[str] = []
        if self.resume:
            opt, start_epoch, best, elapsed = self._load_checkpoint()
            if log_path.exists():
                log_lines = [ln for ln in log_path.read_text().splitlines()
                             if ln.strip() and json.loads(ln)["epoch"] <= start_epoch]
            self.log(f"resuming {run_dir} after epoch {start_epoch}")
            if self.resume_epochs is not None and start_epoch > oc.epochs:
                raise HdnnpError(f"{run_dir} has run {start_epoch} epochs already; --epochs "
                                 f"{oc.epochs} would not add any")

        total_epochs = oc.epochs + oc.refine_epochs
        epochs = range(start_epoch + 1, total_epochs + 1)
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=total_epochs, initial=start_epoch, desc="training", unit="epoch")
        t_start = time.perf_counter() - elapsed
        stop_reason = "epochs"
        last_epoch = start_epoch
        try:
            for epoch in epochs:
                if epoch == oc.epochs + 1:
                    # refinement: L-BFGS from the best model of the main phase
                    self.model.load_state_dict(best["state"])
                    opt = self._make_optimizer("lbfgs")
                    self.log(f"epoch {epoch}: refining the best model (epoch {best['epoch']}) "
                             "with L-BFGS")
                loss, train_running = self._epoch(opt, epoch)
                if not math.isfinite(loss):
                    stop_reason = "non-finite loss"
                    # the labels were checked finite in _setup: this is divergence
                    hint = (f"the optimisation diverged (labels are finite); try a smaller "
                            f"learning rate than {oc.learning_rate}" if self._kind(epoch) !=
                            "lbfgs" else "the L-BFGS step diverged (labels are finite)")
                    if best["epoch"] == 0:
                        raise HdnnpError(f"epoch {epoch}: the training loss is {loss} before "
                                         f"any epoch improved the model: {hint}; no model "
                                         "written")
                    self.log(f"epoch {epoch}: loss is {loss}; stopping: {hint}; keeping the "
                             f"best model (epoch {best['epoch']})")
                    break
                train_m = (self._evaluate(self.train_fs)
                           if oc.eval_train_every and epoch % oc.eval_train_every == 0
                           else train_running)
                test_m = self._evaluate(self.test_fs)
                sel = loss_value(test_m if test_m else train_m, oc)
                improved = sel < best["loss"]
                if improved:
                    best.update(state=copy.deepcopy(self.model.state_dict()), loss=sel,
                                epoch=epoch, bad=0)
                else:
                    best["bad"] += 1
                elapsed = time.perf_counter() - t_start
                rec = {"epoch": epoch, "wall_s": round(elapsed, 3), "loss": loss,
                       "lr": self._lr_at(epoch), "train": train_m}
                if test_m:
                    rec["test"] = test_m
                rec["best"] = improved
                log_lines.append(json.dumps(rec))
                atomic_write_text(log_path, "\n".join(log_lines) + "\n")
                if improved:
                    self._write_model(best["state"], self._provenance(
                        {**best, "last_epoch": epoch}, elapsed, _prefixed(test_m, "test")))
                self._save_checkpoint(opt, epoch, best, {"elapsed": elapsed})
                last_epoch = epoch
                if bar is not None:
                    bar.update(1)
                    post = {"loss": f"{loss:.3g}"}
                    shown = test_m or train_m
                    if "energy_rmse_meV_per_atom" in shown:
                        post["E"] = f"{shown['energy_rmse_meV_per_atom']:.2f}meV/at"
                    if "force_rmse_meV_per_A" in shown:
                        post["F"] = f"{shown['force_rmse_meV_per_A'] / 1000:.3f}eV/Å"
                    bar.set_postfix(post)
                if oc.early_stopping_patience is not None and best["bad"] >= \
                        oc.early_stopping_patience:
                    stop_reason = "early stopping"
                    break
                if oc.max_time_s is not None and time.perf_counter() - run_start >= oc.max_time_s:
                    stop_reason = "time limit"
                    break
        except KeyboardInterrupt:
            stop_reason = "interrupted"
            self.log("\ninterrupted: keeping the best model so far")
        finally:
            if bar is not None:
                bar.close()
        elapsed = time.perf_counter() - t_start
        if best["epoch"] == 0:
            if stop_reason == "interrupted":  # nothing trained: write no model
                return {"stop_reason": stop_reason, "epochs_run": last_epoch,
                        "best_epoch": 0, "model": None}
            raise HdnnpError(f"{run_dir}: no epoch improved the initial model "
                             f"({stop_reason}); no model written")
        self.model.load_state_dict(best["state"])
        metrics = self._finish(best, last_epoch, elapsed, stop_reason)
        metrics["model"] = str(run_dir / "model.json")
        return metrics

    def _write_model(self, state, provenance):
        model = copy.deepcopy(self.model)
        model.load_state_dict(state)
        save_potential(model, self.run_dir / "model.json", training=provenance)

    def _finish(self, best, last_epoch, elapsed, stop_reason) -> dict:
        metrics = evaluate_run(self.model, self.run_dir, self.train_ds, self.test_ds,
                               self.train_force_mask, figures=self.cfg.figures,
                               progress=self.progress)
        metrics.update({"stop_reason": stop_reason, "epochs_run": last_epoch,
                        "best_epoch": best["epoch"], "wall_s": round(elapsed, 2),
                        "setup_s": round(self.setup_s, 2)})
        atomic_write_text(self.run_dir / "metrics.json", json.dumps(metrics, indent=2))
        prov = self._provenance({**best, "last_epoch": last_epoch}, elapsed, metrics)
        save_potential(self.model, self.run_dir / "model.json", training=prov)
        self.log(f"stopped ({stop_reason}) after epoch {last_epoch}; best epoch {best['epoch']}; "
                 f"model: {self.run_dir / 'model.json'}")
        return metrics


def write_split(run_dir: Path, train_ds: Dataset, test_ds: Dataset) -> None:
    """``split.json`` (structure names) and ``test.extxyz`` (the test structures)."""
    atomic_write_text(run_dir / "split.json", json.dumps(
        {"train": train_ds.names, "test": test_ds.names}, indent=0))
    if len(test_ds):
        from hdnnp.io import write_structures

        write_structures(run_dir / "test.extxyz", test_ds.structures, format="extxyz")


def evaluate_run(model: NeuralNetworkPotential, run_dir: Path, train_ds: Dataset,
                 test_ds: Dataset, train_force_mask=None, figures: bool = True,
                 progress: bool = False) -> dict:
    """Predict the training and test sets with the full model (descriptors and forces by
    autograd), write ``predictions.npz`` and the report; returns the report's metrics.

    ``train_force_mask`` restricts the training-force metrics to the structures that
    took part in force training (None: all with reference forces).
    """
    from hdnnp.analysis.report import write_report
    from hdnnp.predict import predict_structures

    model.eval()
    arrays = {}
    for name, ds, fmask in (("train", train_ds, train_force_mask), ("test", test_ds, None)):
        pred = predict_structures(model, ds.structures, forces=True, progress=progress)
        n_at = pred["n_atoms"]
        fr, fp = pred["forces_ref"], pred["forces"]
        if fmask is not None:
            atom_mask = np.repeat(fmask, n_at)
            fr, fp = fr[atom_mask], fp[atom_mask]
        ok = ~np.isnan(fr).any(1) if len(fr) else np.zeros(0, bool)
        arrays.update({
            f"{name}_energy_ref": pred["energy_ref"], f"{name}_energy_pred": pred["energy"],
            f"{name}_n_atoms": n_at, f"{name}_forces_ref": fr[ok].reshape(-1, 3),
            f"{name}_forces_pred": fp[ok].reshape(-1, 3),
            f"{name}_names": np.array(ds.names, dtype=str),
            f"{name}_numbers": (np.concatenate([a.numbers for a in ds.structures])
                                if len(ds) else np.zeros(0, dtype=np.int64))})
        if "energy_std" in pred:
            arrays[f"{name}_energy_std"] = pred["energy_std"]
    with atomic_path(run_dir / "predictions.npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
    return write_report(run_dir, figures=figures)


def _prefixed(m: dict, prefix: str) -> dict:
    return {f"{prefix}_{k}": v for k, v in m.items()}
