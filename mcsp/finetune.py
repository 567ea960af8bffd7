"""Fine-tuning MCSP for a label: pretrained (or random) encoders + fusion + an MLP head.

Modes: ``full`` (every weight trains, the encoders at a lower learning rate), ``linear`` (the
encoders are frozen and a linear layer is fitted on their fused embeddings, a linear probe) and
``scratch`` (random encoders, everything trains). Modality and domain subsets make the paper's
ablations. The protocol is :func:`mcsp.evaluate.evaluation_split`'s: train on the training folds,
pick the epoch on the validation fold (subject-averaged AUROC, validation loss breaking ties),
score the test fold once. With ``finetune.teacher`` a multi-domain teacher, fine-tuned first in
the same job, is distilled into the job's (typically one-domain) model: the paper's cross-model
distillation across domains.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.utils.class_weight import compute_class_weight
from torch import nn

from mcsp.augment import prepare_modality, window_view
from mcsp.config import schema_defaults
from mcsp.evaluate import (
    EarlyStopping,
    auroc,
    class_probabilities,
    evaluation_split,
    labelled,
    prediction_frame,
    subject_scores,
)
from mcsp.exceptions import McspError
from mcsp.models import MCSP
from mcsp.models.mcsp import model_settings as network_settings
from mcsp.store import PairDataset, collate_pairs, read_store_table
from mcsp.train import _to_device, load_pretrained, merge, resolve_device

log = logging.getLogger(__name__)

MODES = ("full", "linear", "scratch")
GRID_KEYS = ("lr", "weight_decay", "dropout", "backbone_lr_scale", "window_augment")


def finetune_settings(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``finetune`` block with every default filled."""
    return merge(schema_defaults("config", "finetune"), settings)


class Classifier(nn.Module):
    """Fused embeddings of the chosen modalities, concatenated, into a classification head.

    A sample lacking one of the modalities gets a learned placeholder embedding for it.

    Args:
        backbone: the MCSP encoders (pretrained or random).
        n_classes: output logits.
        modalities: modalities used (a subset of the backbone's).
        domains: domains used (a subset of the backbone's).
        linear: a single linear layer (linear probe) instead of a two-layer MLP.
        dropout: dropout of the MLP head.
    """

    def __init__(
        self,
        backbone: MCSP,
        n_classes: int,
        modalities: Sequence[str],
        domains: Sequence[str],
        linear: bool = False,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        missing = sorted(set(modalities) - set(backbone.modalities))
        if missing:
            raise McspError(
                f"fine-tuning asks for modalities {missing} that the model lacks "
                f"(it has {list(backbone.modalities)}): change finetune.modalities."
            )
        self.backbone = backbone
        self.modalities = tuple(m for m in backbone.modalities if m in modalities)
        self.domains = tuple(d for d in backbone.domains if d in domains)
        hidden = backbone.settings["hidden"]
        width = hidden * len(self.modalities)
        self.placeholder = nn.ParameterDict(
            {m: nn.Parameter(torch.zeros(hidden)) for m in self.modalities}
        )
        self.head = (
            nn.Linear(width, n_classes)
            if linear
            else nn.Sequential(
                nn.Linear(width, hidden),
                nn.GELU(),
                nn.Dropout(dropout),
                nn.Linear(hidden, n_classes),
            )
        )

    def features(self, batch: Mapping[str, Any], device: torch.device) -> torch.Tensor:
        """(B, hidden × modalities) fused embeddings of a collated batch."""
        parts = []
        for m in self.modalities:
            mask = batch[m]["mask"].to(device)
            out = self.placeholder[m].expand(len(mask), -1).clone()
            data = _to_device(batch[m], device)
            if data is not None:
                out[mask] = self.encode(data, m)
            parts.append(out)
        return torch.cat(parts, dim=1)

    def encode(self, data: Mapping[str, Any], modality: str) -> torch.Tensor:
        """(n, hidden) fused embeddings of one modality's collated samples (on the device)."""
        return self.backbone.embed(prepare_modality(data), modality, self.domains).float()

    def forward(self, batch: Mapping[str, Any], device: torch.device) -> torch.Tensor:
        """Logits (B, n_classes)."""
        return self.head(self.features(batch, device))


def store_modalities(store_dir: str | Path) -> list[str]:
    """Modalities with at least one sample in the store, fMRI first."""
    counts = json.loads((Path(store_dir) / "store.json").read_text())["n_samples"]
    return [m for m in ("fmri", "eeg") if counts.get(m)]


def _items(
    store_dir: Path,
    modalities: Sequence[str],
    task: str,
    window_views: bool = False,
    cache: bool = False,
    rwse_steps: int = 0,
) -> PairDataset:
    """Pairs (both modalities) or one modality's samples, restricted to labelled subjects."""
    dataset = PairDataset(
        store_dir,
        modality=None if len(modalities) > 1 else modalities[0],
        window_views=window_views,
        cache=cache,
        rwse_steps=rwse_steps,
    )
    if task not in dataset.pairs.columns:
        labelled(dataset.pairs, task)  # raises with the store's labels listed
    if len(modalities) > 1:
        have = np.zeros(len(dataset), dtype=bool)
        for m in modalities:
            have |= dataset.rows[m] >= 0
        dataset = dataset.subset(have)
    return dataset.subset(dataset.pairs[task].notna().to_numpy())


def _rwse_steps(mode: str, pretrained: str | Path | None, settings: Mapping | None) -> int:
    """Random-walk steps of the network's positional encoding (0 for another encoding), so the
    cached dataset stores each graph's encoding once (:func:`mcsp.models.graph.graph_rwse`)."""
    if mode != "scratch":
        settings = torch.load(pretrained, map_location="cpu", weights_only=False)["settings"]
        settings = settings["model"]
    graph = network_settings(settings)["graph"]
    return graph["pe_dim"] if graph["positional_encoding"] == "random_walk" else 0


def _fraction(pairs: pd.DataFrame, mask: np.ndarray, task: str, fraction: float, seed: int):
    """Keep ``fraction`` of the training subjects (at least one per class), stratified, seeded."""
    if fraction >= 1:
        return mask
    rng = np.random.default_rng([seed, 11])
    subjects = pairs[mask].drop_duplicates(["cohort", "subject"])
    keep = []
    for _, group in subjects.groupby(task):
        n = max(1, int(round(fraction * len(group))))
        keep += list(
            group.iloc[rng.permutation(len(group))[:n]][["cohort", "subject"]].itertuples(
                index=False, name=None
            )
        )
    chosen = set(keep)
    return mask & np.array(
        [(c, s) in chosen for c, s in zip(pairs["cohort"], pairs["subject"], strict=True)]
    )


def grid_points(grid: Mapping[str, Sequence[Any]] | None) -> list[dict[str, Any]]:
    """Every combination of a ``finetune.grid`` (``{key: [values]}``), in order; ``[{}]`` when
    there is none."""
    grid = {k: v for k, v in (grid or {}).items() if v is not None}
    unknown = sorted(set(grid) - set(GRID_KEYS))
    if unknown:
        raise McspError(
            f"finetune.grid keys {unknown} cannot be searched; use some of {', '.join(GRID_KEYS)}."
        )
    points: list[dict[str, Any]] = [{}]
    for key, values in grid.items():
        if not values:
            raise McspError(f"finetune.grid.{key} is empty: list one or more values.")
        points = [{**p, key: v} for p in points for v in values]
    return points


def _batches(n: int, size: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    order = rng.permutation(n) if rng is not None else np.arange(n)
    return np.array_split(order, max(1, -(-n // size)))


def _predict(
    model: Classifier,
    dataset: PairDataset,
    size: int,
    device: torch.device,
    features: bool = False,
) -> torch.Tensor:
    """Logits (or, with ``features``, the head's inputs) of every item, in order, on CPU.

    Eval mode: a sample shared by several pairs is encoded once (in batches of ``size``
    distinct samples), which gives the same embeddings as encoding it with every pair.
    """
    if not len(dataset):
        return torch.zeros(0)
    model.eval()
    parts = []
    with torch.no_grad():
        for m in model.modalities:
            samples, position = dataset.distinct(m)
            out = model.placeholder[m].expand(len(dataset), -1).clone()
            if len(samples):
                encoded = torch.cat(
                    [
                        model.encode(
                            _to_device(collate_pairs([samples[int(i)] for i in batch])[m], device),
                            m,
                        )
                        for batch in _batches(len(samples), size, None)
                    ]
                )
                have = torch.from_numpy(position >= 0).to(out.device)
                out[have] = encoded[torch.from_numpy(position[position >= 0]).to(out.device)]
            parts.append(out)
        out = torch.cat(parts, dim=1)
        if not features:
            out = model.head(out)
    return out.float().cpu()


def _frame(pairs: pd.DataFrame, y: np.ndarray, probs: np.ndarray) -> pd.DataFrame:
    return prediction_frame(pairs.assign(sample_id=pairs["pair_id"]), y, probs)


def teacher_settings(cfg: Mapping[str, Any]) -> dict[str, Any] | None:
    """``finetune.teacher`` with its defaults filled, checked against the student's
    ``finetune.domains``; None (no distillation) when ``teacher.domains`` (or the block) is null."""
    teacher = merge(schema_defaults("config", "finetune.teacher"), cfg.get("teacher"))
    if teacher["domains"] is None:
        return None
    if set(teacher["domains"]) <= set(cfg["domains"]):
        raise McspError(
            f"finetune.teacher.domains {list(teacher['domains'])} add nothing to the student's "
            f"finetune.domains {list(cfg['domains'])}: the teacher must use more domains (e.g. "
            "[spatial, temporal, frequency] for a one-domain student)."
        )
    if not 0 <= teacher["weight"] <= 1 or teacher["temperature"] <= 0:
        raise McspError(
            f"finetune.teacher: weight {teacher['weight']} must lie in [0, 1] and temperature "
            f"{teacher['temperature']} must be > 0."
        )
    return teacher


def distillation_loss(
    student: torch.Tensor, teacher: torch.Tensor, temperature: float
) -> torch.Tensor:
    """``T² · KL(softmax(teacher / T) ‖ softmax(student / T))``, averaged over the batch.

    Shapes: ``student`` and ``teacher`` are (B, n_classes) logits; the result is a scalar.
    """
    return temperature**2 * nn.functional.kl_div(
        nn.functional.log_softmax(student.float() / temperature, dim=1),
        nn.functional.log_softmax(teacher.float() / temperature, dim=1),
        reduction="batchmean",
        log_target=True,
    )


@dataclass
class _Fit:
    """One fine-tuning run: the chosen grid point, its model selected on the validation fold,
    the model whose test predictions count (the refitted one when ``refit``) and the records."""

    settings: dict[str, Any]
    selected: Classifier
    final: Classifier
    stopping: EarlyStopping
    history: list[dict[str, Any]]
    trials: list[dict[str, Any]]


def finetune(
    store_dir: str | Path,
    task: str,
    test_fold: int,
    seed: int = 0,
    pretrained: str | Path | None = None,
    settings: Mapping[str, Any] | None = None,
    model_settings: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Fine-tune on the training folds, select on the validation fold, score the test fold.

    With ``finetune.teacher`` the job first fine-tunes a teacher on ``teacher.domains`` the same
    way (no teacher of its own; from random encoders in ``scratch`` mode), then distils its frozen
    logits into the job's model (see :func:`distillation_loss`); the student is still selected
    on the validation fold's own score and scores the test fold.

    Args:
        store_dir: the dataset store.
        task: a label column of the store.
        test_fold: the outer fold scored.
        seed: seeds the head, the batch order and dropout (``scratch`` also seeds the encoders).
        pretrained: ``model.pt`` of :func:`mcsp.train.pretrain`; needed for ``full`` and
            ``linear``.
        settings: the ``finetune`` block (mode, modalities, domains, epochs, teacher, …).
        model_settings: the ``model`` block, for ``scratch`` only.

    Returns:
        One row per test-fold item (pair, or sample for one modality): ``cohort, subject,
        sample_id, y, score`` (or ``score_k``), ``split``; ``attrs`` records the selection (and
        the teacher's).
    """
    cfg = finetune_settings(settings)
    store_dir = Path(store_dir)
    device = resolve_device(cfg["device"])
    mode = cfg["mode"]
    if mode not in MODES:
        raise McspError(f"finetune.mode {mode!r}: use one of {', '.join(MODES)}.")
    if mode != "scratch" and pretrained is None:
        raise McspError(f"finetune mode {mode} needs a pretrained model (rule pretrain).")
    teacher_cfg = teacher_settings(cfg)
    modalities = cfg["modalities"] or store_modalities(store_dir)
    augment = max([cfg["window_augment"], *(cfg["grid"].get("window_augment") or [])]) > 0
    augment = augment and mode != "linear"
    steps = _rwse_steps(mode, pretrained, model_settings) if cfg["cache"] else 0
    dataset = _items(
        store_dir, modalities, task, window_views=augment, cache=cfg["cache"], rwse_steps=steps
    )
    pairs = dataset.pairs
    classes = sorted(int(v) for v in pairs[task].unique())
    if len(classes) < 2:
        raise McspError(f"{store_dir}: task {task} has one class ({classes}) among labelled items.")
    y = np.searchsorted(classes, pairs[task].to_numpy(dtype=np.int64)).astype(np.int64)
    n_folds = int(read_store_table(store_dir, "index")["fold"].max()) + 1
    train, val, test = evaluation_split(pairs["fold"].astype(int), test_fold, n_folds)
    train = _fraction(pairs, train, task, cfg["label_fraction"], seed)
    for name, mask in (("training", train), ("validation", val), ("test", test)):
        if not mask.any():
            raise McspError(
                f"fine-tuning {task}, test fold {test_fold}: no labelled item in the {name} "
                "folds; use fewer folds or more subjects."
            )
    if len(np.unique(y[train])) < len(classes):
        raise McspError(
            f"fine-tuning {task}, test fold {test_fold}: the training folds lack a class; use "
            "fewer folds or more subjects."
        )

    val_set, test_set = dataset.subset(val), dataset.subset(test)
    y_val = torch.from_numpy(y[val])
    binary = len(classes) == 2 and len(np.unique(y[val])) == 2
    criterion = "subject_auroc, then -val_loss" if binary else "-val_loss"
    # linear probe: the frozen encoders' embeddings, per (domains, item set)
    features: dict[tuple[tuple[str, ...], str], torch.Tensor] = {}

    def build(c: Mapping[str, Any]) -> tuple[Classifier, torch.optim.Optimizer]:
        torch.manual_seed(seed)
        if mode == "scratch":
            backbone = MCSP(dataset.meta["shapes"], model_settings)
        else:
            backbone = load_pretrained(pretrained)
        model = Classifier(
            backbone,
            len(classes),
            modalities,
            c["domains"],
            linear=mode == "linear",
            dropout=c["dropout"],
        ).to(device)
        if mode == "linear":
            for p in model.backbone.parameters():
                p.requires_grad_(False)
        groups = [
            {"params": [*model.head.parameters(), *model.placeholder.parameters()], "lr": c["lr"]}
        ]
        if mode != "linear":
            lr = c["lr"] * (c["backbone_lr_scale"] if mode == "full" else 1.0)
            groups.append({"params": list(model.backbone.parameters()), "lr": lr})
        return model, torch.optim.AdamW(groups, weight_decay=c["weight_decay"])

    def embedded(model: Classifier, name: str, mask: np.ndarray) -> torch.Tensor:
        """The frozen encoders' embeddings of the items of ``mask`` (computed once per domains)."""
        key = (model.domains, name)
        if key not in features:
            part = dataset.subset(mask)
            features[key] = _predict(model, part, cfg["batch_size"], device, True).to(device)
        return features[key]

    def logits_of(model: Classifier, name: str, mask: np.ndarray) -> torch.Tensor:
        """Eval-mode logits (no augmentation, no gradient) of the items of ``mask``, on CPU."""
        if mode != "linear":
            return _predict(model, dataset.subset(mask), cfg["batch_size"], device)
        model.eval()
        with torch.no_grad():
            return model.head(embedded(model, name, mask)).float().cpu()

    def trainer(
        model: Classifier,
        optimiser: torch.optim.Optimizer,
        c: Mapping[str, Any],
        mask: np.ndarray,
        name: str,
        teacher: Classifier | None,
    ) -> Callable[[], float]:
        """One epoch on the items of ``mask`` per call (batch order and augmentations seeded);
        with a ``teacher``, its frozen logits of the same items are distilled."""
        part = dataset.subset(mask)
        targets = torch.from_numpy(y[mask]).to(device)
        weights = compute_class_weight("balanced", classes=np.arange(len(classes)), y=y[mask])
        loss_fn = nn.CrossEntropyLoss(
            weight=torch.tensor(weights, dtype=torch.float32, device=device)
        )
        soft = None if teacher is None else logits_of(teacher, name, mask).to(device)
        rng = np.random.default_rng([seed, 5])
        generator = torch.Generator().manual_seed(
            int(np.random.default_rng([seed, 13]).integers(2**62))
        )

        def epoch() -> float:
            model.train()
            total = 0.0
            for batch in _batches(len(part), c["batch_size"], rng):
                index = torch.from_numpy(batch).to(device)
                if mode != "linear":
                    items = collate_pairs([part[int(i)] for i in batch])
                    if augment:
                        for m in model.modalities:
                            if items[m].get("spatial") is not None:
                                items[m]["spatial"] = window_view(
                                    items[m], c["window_augment"], generator
                                )
                    logits = model(items, device)
                else:
                    logits = model.head(embedded(model, name, mask)[index])
                loss = loss_fn(logits.float(), targets[index])
                if soft is not None:
                    w, t = teacher_cfg["weight"], teacher_cfg["temperature"]
                    loss = (1 - w) * loss + w * distillation_loss(logits, soft[index], t)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                total += loss.item() * len(batch)
            return total / len(part)

        return epoch

    def select(
        c: Mapping[str, Any], teacher: Classifier | None
    ) -> tuple[Classifier, EarlyStopping, list[dict]]:
        """Train on the training folds; keep the epoch that scores best on the validation fold."""
        model, optimiser = build(c)
        run_epoch = trainer(model, optimiser, c, train, "train", teacher)
        stopping, history = EarlyStopping(c["patience"]), []
        for epoch in range(c["epochs"]):
            train_loss = run_epoch()
            logits = logits_of(model, "val", val)
            val_loss = float(nn.functional.cross_entropy(logits, y_val))
            frame = _frame(val_set.pairs, y[val], class_probabilities(logits, len(classes)))
            subjects = subject_scores(frame)
            score = (auroc(subjects["y"], subjects["score"]), -val_loss) if binary else (-val_loss,)
            history.append(
                {
                    "epoch": epoch,
                    "train_loss": train_loss,
                    "val_loss": val_loss,
                    "val_auroc": score[0] if binary else None,
                }
            )
            if stopping.step(epoch, score, model):
                break
        stopping.restore(model)
        return model, stopping, history

    def fit(base: Mapping[str, Any], teacher: _Fit | None) -> _Fit:
        """The grid searched on the validation fold, then the refit when asked. A ``teacher``
        distils its validation-selected model into the selection runs and its refitted model
        (trained on the same training + validation folds) into the refit."""
        trials, best = [], None
        for params in grid_points(base["grid"]):
            c = {**base, **params}
            model, stopping, history = select(c, teacher and teacher.selected)
            trials.append({"params": params, "best": stopping.best, "epoch": stopping.best_epoch})
            if best is None or stopping.best > best[2].best:  # ties keep the earlier grid point
                best = (c, model, stopping, history)
        c, model, stopping, history = best
        final = model
        if c["refit"]:  # the same recipe on training + validation folds, for the chosen epochs
            final, optimiser = build(c)
            run_epoch = trainer(
                final, optimiser, c, train | val, "train+val", teacher and teacher.final
            )
            for _ in range(stopping.best_epoch + 1):
                run_epoch()
        return _Fit(c, model, final, stopping, history, trials)

    teacher, teacher_record = None, None
    if teacher_cfg is not None:
        teacher = fit({**cfg, "domains": teacher_cfg["domains"], "teacher": None}, None)
        teacher_record = {
            "domains": list(teacher.selected.domains),
            "weight": float(teacher_cfg["weight"]),
            "temperature": float(teacher_cfg["temperature"]),
            "hyperparameters": {k: teacher.settings[k] for k in teacher.trials[0]["params"]},
            "selection": teacher.stopping.selection(criterion, len(teacher.history)),
        }
        log.info(
            "teacher %s (%s) test fold %d: best epoch %d of %d",
            "+".join(teacher.selected.domains),
            mode,
            test_fold,
            teacher.stopping.best_epoch,
            len(teacher.history),
        )
    run = fit(cfg, teacher)
    c, stopping = run.settings, run.stopping
    probs = class_probabilities(logits_of(run.final, "test", test), len(classes))
    out = _frame(test_set.pairs, y[test], probs)
    out["split"] = "test"
    out.attrs = {
        "task": task,
        "test_fold": int(test_fold),
        "validation_fold": int((test_fold + 1) % n_folds),
        "seed": int(seed),
        "mode": mode,
        "modalities": list(run.final.modalities),
        "domains": list(run.final.domains),
        "classes": classes,
        "training_subjects": int(
            pairs[train | val if c["refit"] else train]
            .drop_duplicates(["cohort", "subject"])
            .shape[0]
        ),
        "refit": bool(c["refit"]),
        "hyperparameters": {k: c[k] for k in run.trials[0]["params"]},
        "grid": run.trials,
        "selection": stopping.selection(criterion, len(run.history)),
        "history": run.history,
        "teacher": teacher_record,
    }
    log.info(
        "fine-tuned %s (%s) test fold %d: best epoch %d of %d",
        task,
        mode,
        test_fold,
        stopping.best_epoch,
        len(run.history),
    )
    return out
