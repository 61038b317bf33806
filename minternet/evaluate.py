"""Running InterNet over an InterHand2.6M split and scoring it as mmpose does.

The test path is mmpose's: GT boxes, no augmentation or flip test, one hard argmax per joint
(:meth:`~minternet.codec.HeatmapCodec.decode`), the crop's inverse affine back to the
original image, and :func:`~minternet.metrics.interhand_metrics` with GT wrist depths. The
"oracle" replaces the network by each crop's own perfect target: what is left is the error
the heatmap grid alone costs. Reports and the results table are :mod:`minternet.results`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from minternet.codec import HeatmapCodec
from minternet.dataset import InterHandDataset
from minternet.loader import make_loader
from minternet.metrics import Protocol, interhand_metrics
from minternet.model import InterNet
from minternet.transforms import apply_affine, inverse_crop_matrix, normalize

Predictions = dict[str, np.ndarray]
_ORACLE_BATCH = 32  # crops read per step


def _check_dataset(dataset: InterHandDataset, input_size: int) -> None:
    """Test crops only: no augmentation (so no flip or rotation), of the codec's size."""
    if dataset.train is not False:
        raise ValueError(f"evaluation needs InterHandDataset(train=False), not {dataset.train}")
    if dataset.input_size != input_size:
        raise ValueError(f"dataset crops are {dataset.input_size} px, the model takes {input_size}")


def _assemble(
    batch: Mapping[str, torch.Tensor],
    crop_keypoints: np.ndarray | torch.Tensor,
    hand_type: np.ndarray | torch.Tensor,
    rel_root_depth: np.ndarray | torch.Tensor,
) -> Predictions:
    """One batch of decoded outputs (numpy, or tensors on any device) as a
    :data:`Predictions` chunk: crop px are mapped back to original px through each sample's
    inverse crop; z is unchanged.
    """
    crop_keypoints, hand_type, rel_root_depth = (
        v.cpu().numpy() if isinstance(v, torch.Tensor) else v
        for v in (crop_keypoints, hand_type, rel_root_depth)
    )
    size = int(batch["image"].shape[-1])
    keypoints = crop_keypoints.astype(np.float64)
    for b in range(len(keypoints)):
        inverse = inverse_crop_matrix(
            batch["centre"][b].numpy(), float(batch["scale"][b]), float(batch["rotation"][b]), size
        )
        keypoints[b, :, :2] = apply_affine(inverse, keypoints[b, :, :2])
    return {
        "keypoints": keypoints.astype(np.float32),
        "hand_type": np.asarray(hand_type, dtype=bool),
        "rel_root_depth": np.asarray(rel_root_depth, dtype=np.float32),
        "index": batch["index"].numpy(),
        "sample_valid": batch["sample_valid"].numpy() > 0,
    }


def _concat(chunks: list[Predictions]) -> Predictions:
    if not chunks:
        raise ValueError("the dataset has no samples to evaluate")
    return {key: np.concatenate([c[key] for c in chunks]) for key in chunks[0]}


def predict(
    model: InterNet,
    dataset: InterHandDataset,
    *,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    num_workers: int = 0,
    flip_test: bool = False,
    mixed: bool | None = None,
) -> Predictions:
    """Decoded predictions of ``model`` on every crop of ``dataset``, in row order.

    ``dataset`` is ``InterHandDataset(..., train=False, input_size=model.input_size)``.
    ``device`` defaults to where the model's parameters are; another one moves the model
    there. The model runs in eval mode and is put back in its previous mode. ``mixed``
    runs it under bfloat16 autocast with ``channels_last`` inputs (default: on CUDA where
    bfloat16 is supported, else float32); the weights keep their layout, so a model in
    training keeps its own (put them in channels_last for the full gain, as :func:`evaluate`
    does on CUDA). The argmax decoding runs on the device on the heatmaps as the model wrote
    them, and each batch's results are brought back while the device works on the next one.
    ``flip_test`` averages each crop's outputs with its mirror's (:meth:`InterNet.flip_test`).

    Returns numpy arrays over the N samples: ``keypoints`` (N, 42, 3) float32, original-image
    px u, v and z mm relative to the joint's wrist; ``hand_type`` (N, 2) bool [right, left];
    ``rel_root_depth`` (N,) float32 mm, Z_41 - Z_20; ``index`` (N,) int64 dataset rows;
    ``sample_valid`` (N,) bool, False for an image the dataset skipped as bad.
    """
    codec = HeatmapCodec.for_model(model.config)
    _check_dataset(dataset, codec.input_size)
    device = next(model.parameters()).device if device is None else torch.device(device)
    if mixed is None:
        mixed = device.type == "cuda" and torch.cuda.is_bf16_supported()
    was_training = model.training
    model.to(device).eval()
    chunks, pending = [], None
    try:
        with torch.no_grad():
            for batch in make_loader(dataset, batch_size, shuffle=False, num_workers=num_workers):
                images = batch["image"].to(device, non_blocking=True)
                outputs = infer(model, images, codec, mixed, flip_test)
                if pending is not None:  # the previous batch, while this one computes
                    chunks.append(_assemble(*pending))
                pending = (batch, *outputs)
            if pending is not None:
                chunks.append(_assemble(*pending))
    finally:
        model.train(was_training)
    return _concat(chunks)


def infer(
    model: InterNet, images: torch.Tensor, codec: HeatmapCodec, mixed: bool,
    flip_test: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`predict`'s work on one batch of uint8 crops (B, 3, S, S) on the model's device,
    all of it there: crop keypoints (B, 42, 3) float32 px and mm, hand presence (B, 2) bool,
    relative root depth (B,) float32 mm. ``mixed``: bfloat16 autocast and channels_last;
    ``flip_test``: outputs averaged with the mirrored crop's (:meth:`InterNet.flip_test`).
    """
    memory = torch.channels_last if mixed else torch.contiguous_format
    with torch.autocast(images.device.type, torch.bfloat16, enabled=mixed):
        x = normalize(images).contiguous(memory_format=memory)
        out = model.flip_test(x) if flip_test else model(x)
    crop, _ = codec.decode(out.heatmaps)
    hand_type = codec.decode_hand_type(out.hand_logits)
    return crop, hand_type, codec.decode_root(out.root_depth[:, 0].float())


def oracle_predictions(dataset: InterHandDataset, codec: HeatmapCodec) -> Predictions:
    """:func:`predict`'s output for a perfect network: the floor the codec allows.

    Each crop's own keypoints become its target heatmaps, decoded by the same hard argmax as
    a model's (:meth:`~minternet.codec.HeatmapCodec.decode_target`, which gives what decoding
    the dense target gives without building it); the root depth goes through
    ``encode_root`` and ``decode_root``, clipped to the soft-argmax's range
    [0, root_bins - 1]; the hand type is the GT.
    """
    _check_dataset(dataset, codec.input_size)
    chunks = []
    for batch in make_loader(dataset, _ORACLE_BATCH, shuffle=False):
        crop, _ = codec.decode_target(batch["keypoints"])
        rho, _ = codec.encode_root(batch["rel_root_depth"], batch["rel_root_valid"])
        root = codec.decode_root(rho.clamp(0, codec.root_bins - 1))
        chunks.append(_assemble(batch, crop.numpy(), batch["hand_type"].numpy() > 0, root.numpy()))
    return _concat(chunks)


def average_pose_predictions(
    train: InterHandDataset, dataset: InterHandDataset, codec: HeatmapCodec
) -> Predictions:
    """:func:`predict`'s output for a network that ignores the pixels: the baseline a trained
    model must beat.

    Every crop of ``dataset`` gets the mean crop-space pose of ``train``'s crops (per joint,
    over the crops where it is valid: u, v px and z mm relative to its wrist), mapped back
    through its own inverse crop, with the GT hand type and the mean relative root depth.
    Because the crop is cut around the GT box, this already knows where the hands are and
    how large: what it misses is the pose. Both datasets are test crops
    (``train=False``) of the codec's input size.
    """
    _check_dataset(train, codec.input_size)
    _check_dataset(dataset, codec.input_size)
    total, count = torch.zeros(42, 3, dtype=torch.float64), torch.zeros(42, dtype=torch.float64)
    root_total, root_count = 0.0, 0.0
    for batch in make_loader(train, _ORACLE_BATCH, shuffle=False):
        valid = batch["joint_valid"].double()
        total += (batch["keypoints"].double() * valid[..., None]).sum(0)
        count += valid.sum(0)
        root_valid = batch["rel_root_valid"].double().reshape(-1)
        root_total += float((batch["rel_root_depth"].double().reshape(-1) * root_valid).sum())
        root_count += float(root_valid.sum())
    centre = torch.tensor([codec.input_size / 2, codec.input_size / 2, 0.0], dtype=torch.float64)
    mean = torch.where(count[:, None] > 0, total / count.clamp(min=1)[:, None], centre)
    root = root_total / root_count if root_count else 0.0
    chunks = []
    for batch in make_loader(dataset, _ORACLE_BATCH, shuffle=False):
        n = len(batch["index"])
        poses = mean.float().expand(n, 42, 3).numpy()
        roots = np.full(n, root, np.float32)
        chunks.append(_assemble(batch, poses, batch["hand_type"].numpy() > 0, roots))
    return _concat(chunks)


def ground_truth(dataset: InterHandDataset, predictions: Predictions) -> dict[str, np.ndarray]:
    """The GT of the predicted rows, keyed as :func:`interhand_metrics`' arguments:
    ``gt_joint_cam``, ``joint_valid``, ``gt_hand_type``, ``hand_type_valid``, ``abs_depth``,
    ``focal``, ``princpt``. A sample skipped as a bad image counts nowhere.
    """
    rows, valid = predictions["index"], predictions["sample_valid"]
    index = dataset.index
    return {
        "gt_joint_cam": index["joint_cam"][rows],
        "joint_valid": index["joint_valid"][rows] * valid[:, None],
        "gt_hand_type": index["hand_type"][rows],
        "hand_type_valid": index["hand_type_valid"][rows] * valid,
        "abs_depth": index["abs_depth"][rows],
        "focal": index["focal"][rows],
        "princpt": index["princpt"][rows],
    }


def score_predictions(
    predictions: Predictions, dataset: InterHandDataset, *, protocol: Protocol = "mmpose"
) -> dict[str, float]:
    """:func:`interhand_metrics` of :func:`predict`-style ``predictions`` on ``dataset``."""
    return interhand_metrics(
        predictions["keypoints"],
        predictions["hand_type"],
        predictions["rel_root_depth"],
        **ground_truth(dataset, predictions),
        protocol=protocol,
    )


def evaluate_model(
    model: InterNet,
    dataset: InterHandDataset,
    *,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    num_workers: int = 0,
    protocol: Protocol = "mmpose",
) -> dict[str, float]:
    """The five metrics (:data:`~minternet.metrics.METRIC_KEYS`) of ``model`` on ``dataset``:
    :func:`predict`, then :func:`score_predictions`.
    """
    predictions = predict(
        model, dataset, batch_size=batch_size, device=device, num_workers=num_workers
    )
    return score_predictions(predictions, dataset, protocol=protocol)
