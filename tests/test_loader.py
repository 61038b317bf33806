from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from minternet import ORIGINAL, InterHandDataset, collate, make_loader, make_sample
from minternet.augment import sample_augmentation
from minternet.interhand import InterHandFormatError


def batches(loader: torch.utils.data.DataLoader) -> list[dict[str, torch.Tensor]]:
    return list(loader)


def assert_same_batches(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for key in x:
            assert torch.equal(x[key], y[key]), key


def test_collate_stacks_crops_into_tensors(samples_dir):
    dataset = InterHandDataset(samples_dir, train=False, input_size=64)
    batch = collate([dataset[i] for i in range(3)])
    image = batch["image"]
    assert image.shape == (3, 3, 64, 64) and image.dtype == torch.uint8 and image.is_contiguous()
    assert torch.equal(image[1], torch.from_numpy(dataset[1]["image"]).permute(2, 0, 1))
    expected = {
        "keypoints": ((3, 42, 3), torch.float32),
        "joint_valid": ((3, 42), torch.float32),
        "rel_root_depth": ((3,), torch.float32),
        "hand_type": ((3, 2), torch.float32),
        "centre": ((3, 2), torch.float32),
        "flipped": ((3,), torch.bool),
        "image_width": ((3,), torch.int32),
        "index": ((3,), torch.int64),
        "sample_valid": ((3,), torch.float32),
    }
    for key, (shape, dtype) in expected.items():
        assert batch[key].shape == shape and batch[key].dtype == dtype, key
    assert batch["index"].tolist() == [0, 1, 2]
    raw = InterHandDataset(samples_dir)
    with pytest.raises(TypeError, match="image_path"):
        collate([raw[0], raw[2]])


def test_dataset_modes_and_replayable_augmentation(samples_dir):
    raw = InterHandDataset(samples_dir)
    evaluation = InterHandDataset(samples_dir, train=False)
    training = InterHandDataset(samples_dir, train=True, augmentation=ORIGINAL, seed=3)
    assert "bbox" in raw[0] and raw[0]["image"].shape == (512, 334, 3)
    assert evaluation.augmentation_params(0) is None
    plain = make_sample(raw[0])
    for key, value in plain.items():
        assert np.array_equal(evaluation[0][key], value), key
    for epoch in (0, 1):
        training.set_epoch(epoch)
        params = sample_augmentation(np.random.default_rng([3, epoch, 2]), ORIGINAL)
        assert training.augmentation_params(2) == params
        replay = make_sample(raw[2], params=params, aug=ORIGINAL)
        sample = training[2]
        assert np.array_equal(sample["image"], replay["image"])
        assert np.array_equal(sample["keypoints"], replay["keypoints"])
        assert np.array_equal(training[-2]["keypoints"], sample["keypoints"])  # same row
    assert training.augmentation_params(2, epoch=0) != training.augmentation_params(2)
    with pytest.raises(ValueError, match="on_bad_image"):
        InterHandDataset(samples_dir, on_bad_image="ignore")


def test_loader_is_deterministic_whatever_the_worker_count(samples_dir):
    """Same seed, same batches with 0 and 2 (persistent) workers, epoch after epoch; the
    epoch set in the main process reaches the workers.
    """
    runs = []
    for workers in (0, 2):
        dataset = InterHandDataset(samples_dir, train=True, input_size=96, seed=5)
        loader = make_loader(dataset, 2, shuffle=True, num_workers=workers, seed=11)
        assert loader.persistent_workers == (workers > 0) and not loader.pin_memory
        epochs = []
        for epoch in range(3):
            dataset.set_epoch(epoch)
            epochs.append(batches(loader))
        runs.append(epochs)
    for zero, two in zip(*runs, strict=True):
        assert_same_batches(zero, two)
    first, second = runs[0][0], runs[0][1]
    order = [torch.cat([b["index"] for b in epoch]).tolist() for epoch in runs[0]]
    assert all(sorted(o) == [0, 1, 2, 3] for o in order) and len({tuple(o) for o in order}) > 1
    by_index = {int(i): k for b in first for i, k in zip(b["index"], b["keypoints"], strict=True)}
    again = {int(i): k for b in second for i, k in zip(b["index"], b["keypoints"], strict=True)}
    assert any(not torch.equal(by_index[i], again[i]) for i in by_index)  # new augmentation


def test_sampler_and_fixed_order(samples_dir):
    dataset = InterHandDataset(samples_dir, train=False, input_size=32)
    loader = make_loader(dataset, 3, shuffle=False, drop_last=True)
    assert [b["index"].tolist() for b in loader] == [[0, 1, 2]]
    sampler = torch.utils.data.SequentialSampler(range(2))
    assert [
        b["index"].tolist() for b in make_loader(dataset, 4, shuffle=False, sampler=sampler)
    ] == [[0, 1]]
    with pytest.raises(ValueError, match="sampler"):
        make_loader(dataset, 2, shuffle=True, sampler=sampler)


def break_images(root: Path) -> None:
    (root / "image29590.jpg").unlink()
    (root / "image44669.jpg").write_bytes(b"not a jpeg")


@pytest.mark.parametrize("train", [None, True])
def test_bad_images_raise_naming_the_file(flat_copy, train):
    break_images(flat_copy)
    dataset = InterHandDataset(flat_copy, train=train)
    with pytest.raises(FileNotFoundError, match=r"image29590\.jpg"):
        dataset[2]
    with pytest.raises(InterHandFormatError, match=r"image44669\.jpg.*decoded"):
        dataset[1]
    assert dataset.skipped == 0


def test_skipped_bad_images_are_counted_and_weightless(flat_copy, caplog):
    break_images(flat_copy)
    dataset = InterHandDataset(flat_copy, train=True, input_size=64, on_bad_image="skip")
    with caplog.at_level(logging.WARNING, logger="minternet.interhand"):
        good, missing = dataset[0], dataset[2]
    assert "image29590.jpg" in caplog.text
    assert good["sample_valid"] == 1 and good["image"].any()
    assert missing["sample_valid"] == 0 and not missing["image"].any()
    for key in ("joint_valid", "rel_root_valid", "hand_type_valid"):
        assert not np.any(missing[key]), key
    assert dataset.skipped == 1
    # Skips recorded in worker processes are seen here; a sample skipped twice counts once.
    loader = make_loader(dataset, 2, shuffle=False, num_workers=2, persistent_workers=False)
    batch_valid = torch.cat([b["sample_valid"] for b in loader])
    assert batch_valid.tolist() == [1, 0, 0, 1] and dataset.skipped == 2
    raw = InterHandDataset(flat_copy, on_bad_image="skip")[1]
    assert raw["sample_valid"] == 0 and raw["image"].shape == (512, 334, 3)


def test_spawned_workers_map_the_index_instead_of_copying_it():
    import pickle

    data = Path(__file__).resolve().parents[1] / "data_samples"
    dataset = InterHandDataset(data, "train", train=True, seed=3)
    index_bytes = sum(column.nbytes for column in dataset.index.values())
    blob = pickle.dumps(dataset)
    assert len(blob) < index_bytes / 50  # file names and offsets, not the columns
    copy = pickle.loads(blob)
    for name, column in dataset.index.items():
        assert copy.index[name].dtype == column.dtype
        np.testing.assert_array_equal(copy.index[name], column)
    # A selected subset is no longer a whole mapped file: it travels as its values.
    subset = pickle.loads(pickle.dumps(dataset.select(np.arange(5, 9))))
    np.testing.assert_array_equal(subset.index["image_id"], dataset.index["image_id"][5:9])
    # Workers started by spawn give the same batches as the main process.
    plain = next(iter(make_loader(dataset, 4, shuffle=True, seed=1)))
    spawned = make_loader(dataset, 4, shuffle=True, seed=1, num_workers=1)
    spawned.multiprocessing_context = "spawn"
    batch = next(iter(spawned))
    assert all(torch.equal(batch[k], plain[k]) for k in plain)
