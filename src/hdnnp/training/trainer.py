r"""Training of a :class:`~hdnnp.model.NeuralNetworkPotential` on energies and forces.

Loss (per mini-batch, eV and Å units):

.. math::

    L = w_E \Big\langle \Big(\frac{E^\mathrm{NN}_s - E^\mathrm{ref}_s}{N_s}\Big)^2 \Big\rangle_s
      + w_F \big\langle (F^\mathrm{NN}_{a\alpha} - F^\mathrm{ref}_{a\alpha})^2 \big\rangle_{a\alpha}

with the force term over the atoms of the structures selected for force training
(``force_fraction``, as aenet-PyTorch does).  Forces come from the stored pair
Jacobians (:mod:`hdnnp.training.featureset`).  Optimisers: mini-batch Adam (cosine
learning-rate schedule), full-batch L-BFGS with strong-Wolfe line search (ænet's
default method), gradient descent with momentum (``sgd``; batch size 1 is ænet's
"online" training), Levenberg-Marquardt and the Kalman filter
(:mod:`hdnnp.training.second_order`), alone or as a chain of stages (Adam → LM, ...).

The best model is the one with the lowest validation loss; the test set is predicted
once, at the end (:mod:`hdnnp.training.evaluation`).  A run directory holds
``config.json``, ``log.jsonl`` (one line per epoch), ``checkpoint.pt`` (written
atomically every epoch; loaded with ``weights_only=True``), ``model.json`` (the best
potential so far, by validation loss), ``split.json``, ``validation.extxyz``,
``test.extxyz``, and at the end ``predictions.npz``, ``metrics.json`` and the report
figures.  ``Ctrl-C`` stops after the current step, keeping the best
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

from hdnnp._version import __version__
from hdnnp.data import Dataset
from hdnnp.descriptors import default_descriptor, descriptor_from_config
from hdnnp.errors import HdnnpError
from hdnnp.fileio import atomic_path, atomic_write_text
from hdnnp.model import NeuralNetworkPotential
from hdnnp.potential import load_potential, save_potential
from hdnnp.training.config import OptimConfig, TrainConfig
from hdnnp.training.datasets import prepare_splits
from hdnnp.training.evaluation import (
    ErrorAccumulator,
    evaluate_featureset,
    evaluate_run,
    selection_loss,
    write_split,
)
from hdnnp.training.featureset import FeatureSet
from hdnnp.training.losses import batch_loss
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
def stage_label(st: OptimConfig) -> str:
    """``optimizer:epochs`` of a stage, e.g. ``adam:300`` (the run's ``optimizer_chain``)."""
    return f"{st.optimizer}:{st.epochs}"


class Trainer:
    """Train one potential as configured by a :class:`~hdnnp.training.config.TrainConfig`
    (a committee: :func:`hdnnp.training.train`, which trains its members with this class).

    The run is a chain of stages (:meth:`OptimConfig.stage_plan`); every stage starts
    from the best model so far and runs its epochs, or fewer when the validation loss has
    not improved for ``early_stopping_patience`` epochs.  Epochs are numbered through the
    whole chain.  The checkpoint of every epoch holds the stage, the optimizer's state and
    both random generators, so a run killed anywhere resumes to the same model as a run
    that was not (bit for bit with one thread).

    Example::

        >>> cfg = TrainConfig.from_dict({"data": {"train": ["data.xyz"]},   # doctest: +SKIP
        ...                              "training": {"epochs": 50}})
        >>> Trainer(cfg).run()                                              # doctest: +SKIP
    """

    def __init__(self, cfg: TrainConfig, resume: bool = False, progress: bool = True,
                 log=print, extending: bool = False):
        if cfg.training.committee > 1:
            raise HdnnpError("a committee is trained by hdnnp.training.train, not by Trainer")
        self.cfg = cfg
        self.run_dir = Path(cfg.output)
        self.resume = resume
        #: a resumed run whose configuration asks for more epochs or stages
        self.extending = extending
        self.progress = progress
        self.log = log or (lambda *a, **k: None)
        oc = cfg.training  # ranges (epochs, fractions, committee, ...): the schema's
        self.plan = oc.stage_plan()
        self.device = resolve_device(oc.device)
        self.dtype = getattr(torch, oc.dtype)
        self.jacobian_dtype = getattr(torch, oc.jacobian_dtype)

    # -------------------------------------------------------------- set-up
    def _setup(self):
        cfg, oc = self.cfg, self.cfg.training
        if oc.threads:
            torch.set_num_threads(int(oc.threads))
        t0 = time.perf_counter()
        self.splits, self.data_info = prepare_splits(cfg)
        train_ds, valid_ds = self.splits["train"], self.splits["validation"]
        descriptor = build_descriptor(cfg, train_ds.elements)
        torch.manual_seed(oc.seed)
        self.model = NeuralNetworkPotential(
            descriptor, cfg.network.hidden, cfg.network.activation,
            reference_energies=train_ds.reference_energies).to(self.device, self.dtype)
        gen = torch.Generator().manual_seed(oc.seed)
        for e in self.model.elements:
            self.model.networks[e].reset_parameters(gen)

        rng = np.random.default_rng(oc.seed)
        has_f = train_ds.has_forces
        force_mask = np.zeros(len(train_ds), dtype=bool)
        if oc.force_weight > 0 and oc.force_fraction > 0 and has_f.any():
            cand = np.flatnonzero(has_f)
            n_f = round(oc.force_fraction * len(cand))
            force_mask[np.sort(rng.choice(cand, size=n_f, replace=False))] = True
        self.train_force_mask = force_mask
        valid_mask = valid_ds.has_forces if oc.force_weight > 0 else np.zeros(
            len(valid_ds), bool)
        self.log(f"data: {self.data_info}; force structures: {int(force_mask.sum())} train, "
                 f"{int(valid_mask.sum())} validation")
        kw = dict(dtype=self.dtype, jacobian_dtype=self.jacobian_dtype, device=self.device,
                  progress=self.progress)
        self.train_fs = FeatureSet(descriptor, train_ds, force_mask, desc="train descriptors",
                                   **kw)
        # the test set has no feature set: it is predicted once, at the end
        self.valid_fs = (FeatureSet(descriptor, valid_ds, valid_mask,
                                    desc="validation descriptors", **kw)
                         if len(valid_ds) else None)
        mem = self.train_fs.memory_bytes() + (self.valid_fs.memory_bytes()
                                              if self.valid_fs else 0)
        self.setup_s = time.perf_counter() - t0
        self.log(f"descriptors: {descriptor.kind}, {descriptor.max_features} features, cutoff "
                 f"{descriptor.cutoff:.2f} Å; stored {mem / 2**20:.0f} MiB in {self.setup_s:.1f} s")
        if self.valid_fs is None:
            self.log("no validation set: the training loss chooses the best model")
        self.norm_info = fit_normalisation(self.model, self.train_fs, train_ds)
        if oc.init_model:
            self._load_initial_model(oc.init_model)
        self.rng = rng

    def _load_initial_model(self, path) -> None:
        """Copy weights and normalisation from a potential with the same set-up."""
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

    def _make_optimizer(self, st: OptimConfig):
        oc = self.cfg.training
        params = list(self.model.parameters())
        weights = LossWeights(oc.energy_weight, oc.force_weight)
        if st.optimizer == "lm":
            return LevenbergMarquardt(self.model, weights, mu=st.lm_mu,
                                      mu_increase=st.lm_mu_increase,
                                      mu_decrease=st.lm_mu_decrease,
                                      force_rows=st.lm_force_rows, subset=st.lm_subset,
                                      block_atoms=st.lm_block_atoms)
        if st.optimizer == "kalman":
            return KalmanFilter(self.model, weights, kalman_type=st.kalman_type,
                                epsilon=st.kalman_epsilon, q0=st.kalman_q0,
                                qtau=st.kalman_qtau, qmin=st.kalman_qmin, eta=st.kalman_eta,
                                etatau=st.kalman_etatau, etamax=st.kalman_etamax,
                                lambda_=st.kalman_lambda_short, nu=st.kalman_nue_short,
                                streams=st.kalman_streams,
                                force_fraction=st.kalman_force_fraction)
        if st.optimizer == "adam":
            return torch.optim.Adam(params, lr=st.learning_rate, weight_decay=st.weight_decay)
        if st.optimizer == "sgd":
            return torch.optim.SGD(params, lr=st.learning_rate, momentum=st.momentum,
                                   weight_decay=st.weight_decay)
        # max_eval bounds the line search too (torch passes max_eval - evaluations so far
        # as its budget): allow 25 evaluations per iteration
        return torch.optim.LBFGS(params, lr=1.0, max_iter=st.lbfgs_iterations_per_epoch,
                                 max_eval=25 * st.lbfgs_iterations_per_epoch,
                                 history_size=st.lbfgs_history, line_search_fn="strong_wolfe",
                                 tolerance_grad=1e-12, tolerance_change=1e-15)

    @staticmethod
    def _lr_at(st: OptimConfig, step: int) -> float | None:
        """Learning rate of the ``step``-th epoch (1-based) of a stage: constant, or the
        cosine schedule from ``learning_rate`` to ``learning_rate_final`` over the stage."""
        if st.optimizer in ("lbfgs", "lm", "kalman"):
            return None
        if st.learning_rate_final is None:
            return st.learning_rate
        frac = min(1.0, (step - 1) / max(1, st.epochs - 1))
        return st.learning_rate_final + 0.5 * (st.learning_rate - st.learning_rate_final) * (
            1 + math.cos(math.pi * frac))

    # ------------------------------------------------------------ one epoch
    def _epoch(self, opt, st: OptimConfig, step: int) -> tuple[float, dict]:
        oc = self.cfg.training
        self.model.train()
        lr = self._lr_at(st, step)
        if lr is not None:
            for group in opt.param_groups:
                group["lr"] = lr
        if st.optimizer in ("lm", "kalman"):
            return opt.epoch(self.train_fs, self.rng)
        acc = ErrorAccumulator()
        if st.optimizer == "lbfgs":
            tb = self.train_fs.batch()
            state = {}

            def closure():
                opt.zero_grad()
                a = ErrorAccumulator()
                loss = batch_loss(self.model, tb, oc.energy_weight, oc.force_weight, a)
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
        for start in range(0, n, st.batch_size):
            idx = np.sort(order[start:start + st.batch_size])
            tb = self.train_fs.batch(idx)
            opt.zero_grad()
            loss = batch_loss(self.model, tb, oc.energy_weight, oc.force_weight, acc)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        return total / max(count, 1), acc.result()

    def _evaluate(self, fs: FeatureSet | None) -> dict:
        return evaluate_featureset(self.model, fs, step=self.cfg.training.batch_size * 8)

    # ----------------------------------------------------------- checkpoint
    def _save_checkpoint(self, opt, epoch, best, position, elapsed):
        state = {
            "epoch": epoch,
            "stage": position["stage"],
            "stage_first_epoch": position["first_epoch"],
            "stage_ended": position["ended"],
            "model": self.model.state_dict(),
            "optimizer": opt.state_dict(),
            "optimizer_kind": self.plan[position["stage"]].optimizer,
            "best_model": best["state"],
            "best_loss": best["loss"],
            "best_epoch": best["epoch"],
            "bad_epochs": best["bad"],
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": json.dumps(self.rng.bit_generator.state),
            "elapsed_s": elapsed,
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
        if "stage" in state:
            position = {"stage": int(state["stage"]),
                        "first_epoch": int(state["stage_first_epoch"]),
                        "ended": bool(state["stage_ended"])}
        else:  # written before chains: main epochs, then the L-BFGS refinement
            main = self.plan[0].epochs if len(self.plan) > 1 else epoch + 1
            position = ({"stage": 0, "first_epoch": 1, "ended": False} if epoch < main else
                        {"stage": 1, "first_epoch": main + 1, "ended": False}
                        if epoch > main else {"stage": 0, "first_epoch": 1, "ended": True})
        if position["stage"] >= len(self.plan):
            raise HdnnpError(f"{path}: stage {position['stage'] + 1} of a chain of "
                             f"{len(self.plan)} stages; the configuration has changed")
        opt = None
        if state.get("optimizer_kind") == self.plan[position["stage"]].optimizer:
            opt = self._make_optimizer(self.plan[position["stage"]])
            opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"].cpu())
        self.rng.bit_generator.state = json.loads(state["numpy_rng"])
        best = {"state": state["best_model"], "loss": state["best_loss"],
                "epoch": state["best_epoch"], "bad": state["bad_epochs"]}
        return opt, epoch, best, position, float(state.get("elapsed_s", 0.0))

    def _check_extension(self, last_epoch: int, position: dict, best: dict) -> None:
        """A run extended in its last stage must get epochs it has not run; a stage that
        ended early continues (its patience counts afresh)."""
        last = len(self.plan) - 1
        if position["stage"] != last:
            return
        done = last_epoch - position["first_epoch"] + 1
        if done >= self.plan[last].epochs:
            raise HdnnpError(f"{self.run_dir}: its last stage ({self.plan[last].optimizer}) "
                             f"has run {done} epochs already; {self.plan[last].epochs} in all "
                             "would not add any")
        position["ended"] = False
        best["bad"] = 0

    # ------------------------------------------------------------ provenance
    def _provenance(self, best, elapsed, metrics=None) -> dict:
        oc = self.cfg.training
        prov = {
            "data": list(self.cfg.data.train),
            "data_selection": self.data_info,
            **{f"n_{name}": len(ds) for name, ds in self.splits.items()},
            "n_force_structures": int(self.train_force_mask.sum()),
            "seed": oc.seed,
            "data_seed": self.cfg.data.seed,
            "optimizer": oc.optimizer,
            "optimizer_chain": [stage_label(st) for st in self.plan],
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
        """Train (or resume); returns the final metrics (also written to ``metrics.json``)."""
        run_dir = self.run_dir
        cfg, oc = self.cfg, self.cfg.training
        log_path = run_dir / "log.jsonl"
        if run_dir.exists() and (run_dir / "checkpoint.pt").exists() and not self.resume:
            raise HdnnpError(f"{run_dir} already holds a training run; use --resume to continue "
                             "it or choose another output directory")
        run_dir.mkdir(parents=True, exist_ok=True)
        if not self.resume:  # first: a set-up interrupted by Ctrl-C can be resumed
            atomic_write_text(run_dir / "config.json", json.dumps(cfg.to_dict(), indent=2))
        run_start = time.perf_counter()
        self._setup()

        opt, last_epoch, elapsed = None, 0, 0.0
        position = {"stage": 0, "first_epoch": 1, "ended": False}
        best = {"state": copy.deepcopy(self.model.state_dict()), "loss": float("inf"),
                "epoch": 0, "bad": 0}
        log_lines: list[str] = []
        if self.resume and (run_dir / "checkpoint.pt").exists():
            opt, last_epoch, best, position, elapsed = self._load_checkpoint()
            if log_path.exists():
                log_lines = [ln for ln in log_path.read_text().splitlines()
                             if ln.strip() and json.loads(ln)["epoch"] <= last_epoch]
            if self.extending:
                self._check_extension(last_epoch, position, best)
            self.log(f"resuming {run_dir} after epoch {last_epoch} (stage "
                     f"{position['stage'] + 1} of {len(self.plan)})")
        elif self.resume:  # interrupted before the first epoch finished: a fresh start
            self.log(f"{run_dir}: no epoch had finished; starting from the beginning")
        # after the checks of an extension: a refused one leaves the run as it was
        atomic_write_text(run_dir / "config.json", json.dumps(cfg.to_dict(), indent=2))
        write_split(run_dir, self.splits)

        total_epochs = sum(st.epochs for st in self.plan)
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=total_epochs, initial=min(last_epoch, total_epochs),
                       desc="training", unit="epoch")
        t_start = time.perf_counter() - elapsed
        stop_reason = "epochs"
        try:
            while position["stage"] < len(self.plan):
                st = self.plan[position["stage"]]
                step = last_epoch - position["first_epoch"] + 2  # the next epoch's, in stage
                if position["ended"] or step > st.epochs:
                    position = {"stage": position["stage"] + 1, "first_epoch": last_epoch + 1,
                                "ended": False}
                    opt = None
                    if position["stage"] < len(self.plan):
                        # the next stage starts from the best model so far
                        self.model.load_state_dict(best["state"])
                        best["bad"] = 0
                        self.log(f"epoch {last_epoch + 1}: stage {position['stage'] + 1} "
                                 f"({stage_label(self.plan[position['stage']])}) from the "
                                 f"best model (epoch {best['epoch']})")
                    continue
                if opt is None:
                    opt = self._make_optimizer(st)
                epoch = last_epoch + 1
                loss, train_running = self._epoch(opt, st, step)
                if not math.isfinite(loss):
                    stop_reason = "non-finite loss"
                    # the labels were checked finite in _setup: this is divergence
                    hint = (f"the optimisation diverged (labels are finite); try a smaller "
                            f"learning rate than {st.learning_rate}"
                            if st.optimizer in ("adam", "sgd") else
                            f"the {st.optimizer} step diverged (labels are finite)")
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
                valid_m = self._evaluate(self.valid_fs)
                sel = selection_loss(valid_m if valid_m else train_m, oc.energy_weight,
                                     oc.force_weight)
                improved = sel < best["loss"]
                if improved:
                    best.update(state=copy.deepcopy(self.model.state_dict()), loss=sel,
                                epoch=epoch, bad=0)
                else:
                    best["bad"] += 1
                if st.early_stopping_patience is not None and \
                        best["bad"] >= st.early_stopping_patience:
                    position["ended"] = True
                elapsed = time.perf_counter() - t_start
                rec = {"epoch": epoch, "stage": position["stage"] + 1,
                       "optimizer": st.optimizer, "wall_s": round(elapsed, 3), "loss": loss,
                       "lr": self._lr_at(st, step), "train": train_m}
                if valid_m:
                    rec["validation"] = valid_m
                rec["best"] = improved
                log_lines.append(json.dumps(rec))
                atomic_write_text(log_path, "\n".join(log_lines) + "\n")
                if improved:
                    self._write_model(best["state"], self._provenance(
                        {**best, "last_epoch": epoch}, elapsed,
                        _prefixed(valid_m, "validation")))
                self._save_checkpoint(opt, epoch, best, position, elapsed)
                last_epoch = epoch
                if bar is not None:
                    bar.update(1)
                    self._show(bar, loss, valid_m or train_m)
                if position["ended"]:
                    self.log(f"epoch {epoch}: no improvement of the validation loss for "
                             f"{best['bad']} epochs; stage {position['stage'] + 1} ends")
                    stop_reason = "early stopping"
                if oc.max_time_s is not None and time.perf_counter() - run_start >= oc.max_time_s:
                    stop_reason = "time limit"
                    break
            else:
                if stop_reason != "early stopping" or not self.plan[-1].early_stopping_patience:
                    stop_reason = "epochs"
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

    @staticmethod
    def _show(bar, loss: float, shown: dict) -> None:
        post = {"loss": f"{loss:.3g}"}
        if "energy_rmse_meV_per_atom" in shown:
            post["E"] = f"{shown['energy_rmse_meV_per_atom']:.2f}meV/at"
        if "force_rmse_eV_per_A" in shown:
            post["F"] = f"{shown['force_rmse_eV_per_A']:.3f}eV/Å"
        bar.set_postfix(post)

    def _write_model(self, state, provenance):
        model = copy.deepcopy(self.model)
        model.load_state_dict(state)
        save_potential(model, self.run_dir / "model.json", training=provenance)

    def _finish(self, best, last_epoch, elapsed, stop_reason) -> dict:
        metrics = evaluate_run(self.model, self.run_dir, self.splits, self.train_force_mask,
                               figures=self.cfg.figures, progress=self.progress)
        metrics.update({"stop_reason": stop_reason, "epochs_run": last_epoch,
                        "best_epoch": best["epoch"], "wall_s": round(elapsed, 2),
                        "setup_s": round(self.setup_s, 2),
                        "optimizer_chain": [stage_label(st) for st in self.plan]})
        atomic_write_text(self.run_dir / "metrics.json", json.dumps(metrics, indent=2))
        prov = self._provenance({**best, "last_epoch": last_epoch}, elapsed, metrics)
        save_potential(self.model, self.run_dir / "model.json", training=prov)
        self.log(f"stopped ({stop_reason}) after epoch {last_epoch}; best epoch {best['epoch']} "
                 f"(by the {'validation' if self.valid_fs else 'training'} loss); model: "
                 f"{self.run_dir / 'model.json'}")
        return metrics


def _prefixed(m: dict, prefix: str) -> dict:
    return {f"{prefix}_{k}": v for k, v in m.items()}
