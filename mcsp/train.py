"""Self-supervised pretraining of the MCSP model on a dataset store, resumable after a kill.

``pretrain`` writes into ``out_dir``:

- ``checkpoint.pt``: model, optimiser, scheduler, step, epoch, best validation loss, settings and
  the hash of the settings (written every ``checkpoint_every`` steps and at each epoch's end; a
  rerun with the same settings resumes from it);
- ``best.pt``: the weights with the lowest validation loss so far;
- ``model.pt``: the final weights (and settings, store shapes), the file the workflow tracks;
- ``metrics.csv`` and ``tensorboard/``: the loss terms every ``log_every`` steps and per epoch.

Every random draw of a step (dropout, augmentations) is seeded from ``(seed, step)`` and the batch
order of an epoch from ``(seed, epoch)``, so a resumed run continues the same loss curve as an
uninterrupted one, and the same seed gives the same losses on CPU.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from mcsp.augment import augment_modality, mask_nodes, prepare_modality
from mcsp.config import schema_defaults
from mcsp.exceptions import ConfigError, McspError
from mcsp.io import write_text
from mcsp.losses import pretraining_loss
from mcsp.models import MCSP
from mcsp.plan import merge
from mcsp.resident import ResidentPairs, resident_bytes
from mcsp.store import PairDataset, collate_pairs

log = logging.getLogger(__name__)

SUM_TERMS = ("total", "contrastive", "distillation", "consistency", "reconstruction")
VALIDATION_STEP = 10**9  # validation batch k is seeded as step VALIDATION_STEP + k
# resident: auto keeps up to 1 GiB of samples in a CPU job's memory (the pretrain rule asks 8 GB)
RESIDENT_CPU_MAX_BYTES = 2**30


def training_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """``{"model": …, "pretrain": …}`` of a config, every default filled."""
    return {
        "model": merge(schema_defaults("config", "model"), config.get("model")),
        "pretrain": merge(schema_defaults("config", "pretrain"), config.get("pretrain")),
    }


def settings_hash(settings: Mapping[str, Any]) -> str:
    """Short hash of the settings that shape a run (max_steps and epochs excluded, so a run can
    be extended)."""
    keep = merge(settings, {})
    for key in ("epochs", "max_steps", "num_workers", "log_every", "checkpoint_every", "device"):
        keep["pretrain"].pop(key, None)
    return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:16]


def resolve_device(name: str) -> torch.device:
    """``auto`` = this process's GPU (``LOCAL_RANK``) when CUDA is available, else the CPU."""
    if name == "cpu":
        return torch.device("cpu")
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if not gpus:
        if name == "cuda":
            raise ConfigError("device is cuda but no CUDA device is visible: use auto or cpu.")
        return torch.device("cpu")
    local = int(os.environ.get("LOCAL_RANK", 0))
    if local >= gpus:
        raise ConfigError(
            f"process {local} on this node has no GPU of its own ({gpus} visible): start one "
            f"process per GPU (torchrun --nproc_per_node {gpus}) or set device: cpu."
        )
    return torch.device("cuda", local)


def split_subjects(pairs: Any, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean train / validation masks over pair rows, whole subjects on one side.

    ``round(val_fraction × subjects)`` validation subjects (at least one when the fraction is
    positive and two or more subjects exist), drawn with ``seed``.
    """
    keys = (pairs["cohort"] + "/" + pairs["subject"]).to_numpy()
    subjects = np.unique(keys)
    n_val = int(round(val_fraction * len(subjects)))
    if val_fraction > 0 and len(subjects) >= 2:
        n_val = min(max(n_val, 1), len(subjects) - 1)
    rng = np.random.default_rng(seed)
    val = set(rng.choice(subjects, size=n_val, replace=False).tolist()) if n_val else set()
    is_val = np.array([k in val for k in keys], dtype=bool)
    return ~is_val, is_val


def write_subjects(pairs: Any, val_mask: np.ndarray, path: Path) -> None:
    """The subjects a pretraining reads (``cohort, subject, fold, split``), to audit leakage."""
    table = pairs.assign(split=np.where(val_mask, "validation", "train"))
    table = table[["cohort", "subject", "fold", "split"]].drop_duplicates(["cohort", "subject"])
    tmp = path.with_name(path.name + ".tmp")
    table.sort_values(["cohort", "subject"]).to_csv(tmp, sep="\t", index=False)
    os.replace(tmp, path)


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The shuffled batches of an epoch (order from ``(seed, epoch)``); a last batch of one is
    dropped because NT-Xent needs two samples."""
    order = np.random.default_rng([seed, epoch]).permutation(n)
    batches = [order[i : i + batch_size].tolist() for i in range(0, n, batch_size)]
    return [b for b in batches if len(b) >= 2]


def _to_device(data: Mapping[str, Any] | None, device: torch.device) -> dict[str, Any] | None:
    if data is None or data.get("spatial") is None:
        return None
    return {k: v.to(device, non_blocking=True) if v is not None else None for k, v in data.items()}


def step_seed(seed: int, step: int) -> int:
    """The seed of every random draw of one optimiser step."""
    return int(np.random.default_rng([seed, step, 7]).integers(2**62))


class Views(torch.nn.Module):
    """Both views of every modality in one ``forward``, so DDP sees one pass per step."""

    def __init__(self, model: MCSP, reconstruct: bool = False) -> None:
        super().__init__()
        self.model = model
        self.decoders = None
        if reconstruct and "spatial" in model.domains:
            hidden = model.settings["hidden"]
            self.decoders = torch.nn.ModuleDict(
                {
                    m: torch.nn.Linear(hidden, model.shapes[f"{m}/spatial"][0])
                    for m in model.modalities
                }
            )

    def forward(self, inputs: Mapping[str, tuple]) -> dict[str, dict[str, Any]]:
        """``{modality: (original, augmented[, masked])}`` → ``{modality: {"orig": out, "aug":
        out[, "reconstruction": {"pred", "target"}]}}``.

        ``masked`` = ``(graph, hidden)`` from :func:`mcsp.augment.mask_nodes` of the original
        spatial graphs: the decoder predicts the hidden nodes' connectivity rows from their
        node embeddings.
        """
        out = {}
        for m, (orig, aug, *masked) in inputs.items():
            out[m] = {"orig": self.model(orig, m), "aug": self.model(aug, m)}
            if masked and self.decoders is not None:
                graph, hidden = masked[0]
                nodes = self.model.encode_nodes(m, graph)
                out[m]["reconstruction"] = {
                    "pred": self.decoders[m](nodes[hidden]),
                    "target": orig["spatial"].x[hidden],
                }
        return out


def batch_loss(
    views: torch.nn.Module,
    batch: Mapping[str, Any],
    settings: Mapping[str, Any],
    device: torch.device,
    seed: int,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The pretraining loss of one batch: every modality's original and augmented views.

    Args:
        views: a :class:`Views` of the model (or a DDP wrapper of one).
        batch: :func:`mcsp.store.collate_pairs` output.
        settings: the ``pretrain`` block.
        device: where the tensors go.
        seed: seeds the augmentations (and, through ``torch.manual_seed``, dropout).
    """
    plain = views.module if isinstance(views, DistributedDataParallel) else views
    torch.manual_seed(seed)
    generator = torch.Generator(device=device).manual_seed(seed)
    inputs = {}
    for modality in plain.model.modalities:
        data = _to_device(batch.get(modality), device)
        if data is not None:
            data = prepare_modality(data)
            inputs[modality] = (data, augment_modality(data, settings["augment"], generator))
            if plain.decoders is not None:
                masked = mask_nodes(data["spatial"], settings["mask_ratio"], generator)
                inputs[modality] += (masked,)
    amp = settings["amp"] and device.type == "cuda"
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        outputs = views(inputs) if inputs else {}
    return pretraining_loss(_float(outputs), batch, settings)


def _float(tree: Any) -> Any:
    if isinstance(tree, torch.Tensor):
        return tree.float()
    if isinstance(tree, Mapping):
        return {k: _float(v) for k, v in tree.items()}
    return tree


def _lr_lambda(warmup: int, total: int):
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


class MetricsLog:
    """Rows of ``metrics.csv`` (fixed columns) mirrored to TensorBoard when it is installed.

    On resume, rows after the checkpoint's step are dropped, so the curve continues without
    duplicates.
    """

    def __init__(self, out_dir: Path, columns: Sequence[str], resume_step: int | None) -> None:
        self.path = out_dir / "metrics.csv"
        self.columns = ["step", "epoch", "split", "lr", *columns]
        rows: list[dict[str, str]] = []
        if resume_step is not None and self.path.is_file():
            with self.path.open() as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        with self.path.open("w", newline="") as f:
            writer = csv.DictWriter(f, self.columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        self.tb = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(out_dir / "tensorboard", purge_step=resume_step)
        except ImportError:
            log.info("tensorboard is not installed: metrics go to %s only", self.path)

    def write(self, row: Mapping[str, Any]) -> None:
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, self.columns, extrasaction="ignore").writerow(row)
        if self.tb is not None:
            for key, value in row.items():
                if key not in ("step", "epoch", "split") and isinstance(value, float | int):
                    self.tb.add_scalar(f"{row['split']}/{key}", value, row["step"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def loss_columns(modalities: Sequence[str], domains: Sequence[str]) -> list[str]:
    """Metric columns: the summed terms, then each contrastive and distillation term."""
    return [
        *SUM_TERMS,
        *(f"contrastive/{m}/{d}" for m in modalities for d in domains),
        *(f"distillation/{d}" for d in domains),
        *(f"reconstruction/{m}" for m in modalities),
        "pairs_both",
    ]


def _loader(
    dataset: PairDataset, batches: list[list[int]], workers: int, seed: int
) -> Iterator[dict[str, Any]]:
    if not batches:
        return iter(())
    return iter(
        torch.utils.data.DataLoader(
            dataset,
            batch_sampler=batches,
            collate_fn=collate_pairs,
            num_workers=workers,
            multiprocessing_context="forkserver" if workers else None,
            worker_init_fn=None,
            generator=torch.Generator().manual_seed(seed),
        )
    )


def use_resident(setting: bool | str, dataset: PairDataset, device: torch.device) -> bool:
    """Whether a pretraining keeps its samples on the device (``pretrain.resident``): ``auto`` =
    when they take at most half of a GPU's free memory, or on CPU at most
    :data:`RESIDENT_CPU_MAX_BYTES`."""
    if isinstance(setting, bool):
        return setting
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return resident_bytes(dataset) <= free // 2
    return resident_bytes(dataset) <= RESIDENT_CPU_MAX_BYTES


def _batches(
    dataset: PairDataset,
    resident: ResidentPairs | None,
    schedule: list[list[int]],
    workers: int,
    seed: int,
) -> Iterator[dict[str, Any]]:
    if resident is not None:
        return resident.batches(schedule)
    return _loader(dataset, schedule, workers, seed)


def _validate(
    model: torch.nn.Module,
    dataset: PairDataset,
    batch_size: int,
    settings: Mapping[str, Any],
    device: torch.device,
    resident: ResidentPairs | None = None,
) -> float | None:
    """Mean validation loss with fixed augmentation seeds (comparable across epochs).

    The pairs are shuffled once with the run's seed, as training batches are: in store order a
    batch would hold one subject's pairs, whose negatives repeat the same windows.
    """
    if len(dataset) < 2:
        return None
    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        order = np.random.default_rng(settings["seed"]).permutation(len(dataset)).tolist()
        batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        batches = [b for b in batches if len(b) >= 2]
        for k, batch in enumerate(_batches(dataset, resident, batches, 0, 0)):
            seed = step_seed(settings["seed"], VALIDATION_STEP + k)
            loss, _ = batch_loss(model, batch, settings, device, seed)
            total += float(loss) * len(batch["pair_id"])
            n += len(batch["pair_id"])
    model.train()
    return total / n if n else None


def _distributed(device: torch.device) -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank = torch.distributed.get_rank() if world > 1 else 0
    return rank, world


def pretrain(
    store_dir: str | Path,
    out_dir: str | Path,
    config: Mapping[str, Any] | None = None,
    resume: bool = True,
    progress: bool = False,
) -> dict[str, Any]:
    """Pretrain MCSP on a store with CD-SSL + CM-SSL; resume from ``out_dir/checkpoint.pt``.

    Run under ``torchrun --nproc_per_node K`` for DDP over K GPUs (each rank takes every K-th
    batch; rank 0 writes). Without a GPU it runs on CPU.

    Args:
        store_dir: a folder written by :func:`mcsp.store.build_store`.
        out_dir: where checkpoints, weights and metrics go.
        config: a config (its ``model`` and ``pretrain`` blocks are used; defaults fill the rest).
        resume: continue from ``checkpoint.pt`` when its settings hash matches.
        progress: show a tqdm progress bar.

    Returns:
        A summary: steps, epochs, final and best losses, seconds, pairs per second, parameters.
    """
    settings = training_settings(config or {})
    train_cfg = settings["pretrain"]
    out_dir = Path(out_dir)
    device = resolve_device(train_cfg["device"])
    rank, world = _distributed(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)

    dataset = PairDataset(
        store_dir,
        exclude_folds=train_cfg["exclude_folds"],
        window_views=train_cfg["augment"]["window_view"] > 0,
    )
    kinds = dataset.pairs["kind"].isin(train_cfg["pairs"]).to_numpy()
    if not kinds.all():
        dataset = dataset.subset(kinds)
    if len(dataset) < 2:
        raise McspError(
            f"{store_dir}: {len(dataset)} pair(s) left for pretraining (pretrain.exclude_folds "
            f"{train_cfg['exclude_folds']}, pretrain.pairs {train_cfg['pairs']}): at least 2 are "
            "needed."
        )
    train_mask, val_mask = split_subjects(
        dataset.pairs, train_cfg["val_fraction"], train_cfg["seed"]
    )
    train_set, val_set = dataset.subset(train_mask), dataset.subset(val_mask)
    resident_train = resident_val = None
    if use_resident(train_cfg["resident"], dataset, device):
        t = time.perf_counter()
        resident = ResidentPairs(dataset, device)
        resident_train, resident_val = resident.subset(train_mask), resident.subset(val_mask)
        log.info(
            "%.0f MB of samples on %s in %.1f s: batches are built there",
            resident_bytes(dataset) / 2**20,
            device,
            time.perf_counter() - t,
        )
    if rank == 0:
        write_subjects(dataset.pairs, val_mask, out_dir / "subjects.tsv")
    shapes = dataset.meta["shapes"]
    torch.manual_seed(train_cfg["seed"])
    model = MCSP(shapes, settings["model"]).to(device)
    core = model
    model = views = Views(core, reconstruct=train_cfg["weights"]["reconstruction"] > 0)
    model.to(device)
    if world > 1:
        model = DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=True,
        )
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=train_cfg["lr"], weight_decay=train_cfg["weight_decay"]
    )
    per_epoch = len(epoch_batches(len(train_set), train_cfg["batch_size"], 0, 0)) // world
    if per_epoch == 0:
        raise McspError(
            f"{store_dir}: {len(train_set)} training pairs make no batch of pretrain.batch_size "
            f"{train_cfg['batch_size']} on {world} process(es): lower the batch size."
        )
    total_steps = per_epoch * train_cfg["epochs"]
    if train_cfg["max_steps"] is not None:
        total_steps = min(total_steps, train_cfg["max_steps"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimiser, _lr_lambda(train_cfg["warmup_steps"], total_steps)
    )

    # the store is part of the hash: a checkpoint left by a pretraining on an earlier store
    # (other segment length, other subjects) must not be resumed
    store_id = {k: v for k, v in dataset.meta.items() if k not in ("seconds", "files")}
    digest = settings_hash({**settings, "store": store_id})
    ckpt_path = out_dir / "checkpoint.pt"
    step, best = 0, math.inf
    resume_step = None
    if resume and ckpt_path.is_file():
        state = torch.load(ckpt_path, map_location=device, weights_only=False)
        if state["hash"] != digest:
            log.warning(
                "%s was written with other settings or store (hash %s, now %s): starting afresh",
                ckpt_path,
                state["hash"],
                digest,
            )
        else:
            core.load_state_dict(state["model"])
            if views.decoders is not None:
                views.decoders.load_state_dict(state["decoders"])
            optimiser.load_state_dict(state["optimiser"])
            scheduler.load_state_dict(state["scheduler"])
            step, best, resume_step = state["step"], state["best"], state["step"]
            log.info(
                "resuming from %s at step %d (best validation loss %.4f)", ckpt_path, step, best
            )
    metrics = (
        MetricsLog(out_dir, loss_columns(core.modalities, core.domains), resume_step)
        if rank == 0
        else None
    )

    def save_checkpoint() -> None:
        if rank == 0:
            _atomic_save(
                {
                    "model": core.state_dict(),
                    "decoders": None if views.decoders is None else views.decoders.state_dict(),
                    "optimiser": optimiser.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "step": step,
                    "epoch": step // per_epoch,
                    "best": best,
                    "settings": settings,
                    "hash": digest,
                    "shapes": shapes,
                },
                ckpt_path,
            )

    bar = None
    if progress and rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=total_steps, initial=step, unit="step", desc="pretrain")
    log.info(
        "pretraining %d parameters on %s (%d process(es)): %d training / %d validation pairs, "
        "%d steps of %d pairs",
        core.n_parameters(),
        device,
        world,
        len(train_set),
        len(val_set),
        total_steps,
        train_cfg["batch_size"],
    )
    t0, pairs_seen, last = time.perf_counter(), 0, {}
    schedule: list[list[int]] = []
    for epoch in range(step // per_epoch, math.ceil(total_steps / per_epoch)):
        batches = epoch_batches(len(train_set), train_cfg["batch_size"], train_cfg["seed"], epoch)
        schedule += batches[rank::world][:per_epoch]
    schedule = schedule[step % per_epoch : step % per_epoch + total_steps - step]
    sums: dict[str, float] = {}
    model.train()
    for batch in _batches(
        train_set, resident_train, schedule, train_cfg["num_workers"], train_cfg["seed"]
    ):
        epoch = step // per_epoch
        loss, parts = batch_loss(
            model, batch, train_cfg, device, step_seed(train_cfg["seed"], step)
        )
        optimiser.zero_grad(set_to_none=True)
        if loss.requires_grad:
            loss.backward()
            if train_cfg["grad_clip"]:
                torch.nn.utils.clip_grad_norm_(model.parameters(), train_cfg["grad_clip"])
            optimiser.step()
        scheduler.step()
        step += 1
        pairs_seen += len(batch["pair_id"])
        for key in SUM_TERMS:
            sums[key] = sums.get(key, 0.0) + parts.get(key, 0.0)
        sums["n"] = sums.get("n", 0) + 1
        last = parts
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{parts['total']:.3f}")
        if metrics and (step % train_cfg["log_every"] == 0 or step == total_steps):
            lr = scheduler.get_last_lr()[0]
            metrics.write({"step": step, "epoch": epoch, "split": "train", "lr": lr, **parts})
        if step % per_epoch == 0 or step == total_steps:
            val = _validate(
                views, val_set, train_cfg["batch_size"], train_cfg, device, resident_val
            )
            score = val if val is not None else sums["total"] / sums["n"]
            sums = {}
            if metrics:
                metrics.write({"step": step, "epoch": epoch, "split": "val", "total": val or ""})
            if score < best:
                best = score
                if rank == 0:
                    _atomic_save(
                        {
                            "model": core.state_dict(),
                            "settings": settings,
                            "shapes": shapes,
                            "step": step,
                            "val_loss": val,
                        },
                        out_dir / "best.pt",
                    )
            save_checkpoint()
        elif step % train_cfg["checkpoint_every"] == 0:
            save_checkpoint()
    seconds = time.perf_counter() - t0
    if bar is not None:
        bar.close()
    summary = {
        "steps": step,
        "epochs": math.ceil(step / per_epoch),
        "total_steps": total_steps,
        "resumed_from": resume_step,
        "final_loss": last.get("total"),
        "best_loss": best,
        "parameters": core.n_parameters(),
        "device": str(device),
        "processes": world,
        "exclude_folds": sorted(int(f) for f in train_cfg["exclude_folds"]),
        "subjects": int(dataset.pairs[["cohort", "subject"]].drop_duplicates().shape[0]),
        "seconds": round(seconds, 2),
        "pairs_per_s": round(pairs_seen * world / seconds, 1) if seconds > 0 else None,
        "resident": resident_train is not None,
    }
    if rank == 0:
        _atomic_save(
            {
                "model": core.state_dict(),
                "settings": settings,
                "shapes": shapes,
                "summary": summary,
            },
            out_dir / "model.pt",
        )
        write_text(out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
        if metrics:
            metrics.close()
    log.info("pretraining done: %s", summary)
    return summary


def load_pretrained(path: str | Path, device: str | torch.device = "cpu") -> MCSP:
    """The MCSP model saved in ``model.pt``, ``best.pt`` or ``checkpoint.pt`` (eval mode)."""
    state = torch.load(path, map_location=device, weights_only=False)
    model = MCSP(state["shapes"], state["settings"]["model"])
    model.load_state_dict(state["model"])
    return model.to(device).eval()


@torch.no_grad()
def embed(
    model: MCSP,
    store_dir: str | Path,
    modality: str,
    domains: Sequence[str] | None = None,
    batch_size: int = 64,
) -> tuple[Any, np.ndarray]:
    """Fused embeddings (no projection head) of every sample of ``modality`` in a store.

    Returns:
        ``(samples, embeddings)``: the samples' rows of the store index (sample_id, subject,
        labels, fold…) and a float32 array with one embedding per row.
    """
    dataset = PairDataset(store_dir, modality=modality)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        data = _to_device(collate_pairs(items)[modality], device)
        out.append(model.embed(prepare_modality(data), modality, domains).float().cpu())
    model.train(was_training)
    return dataset.pairs.reset_index(drop=True), torch.cat(out).numpy()
