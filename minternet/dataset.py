"""The InterHand2.6M Dataset: raw samples or training crops (book chapters 1 and 2).

It joins the two halves of the data path without either knowing the other: the columnar
index of :mod:`minternet.interhand` (what the files say) and the crops and augmentation of
:mod:`minternet.transforms` (what the model sees).
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import torch

from minternet.augment import MMPOSE, ORIGINAL, Augmentation, AugParams, sample_augmentation
from minternet.camera import Camera
from minternet.image_header import image_size, is_complete
from minternet.index_cache import index_from_state, index_state
from minternet.interhand import find_annotation_files, load_index
from minternet.json_records import InterHandFormatError
from minternet.transforms import INPUT_SIZE, make_sample

if TYPE_CHECKING:  # a run's settings name the sets; the dataset never builds a model
    from minternet.config import TrainConfig

log = logging.getLogger(__name__)

MAX_IMAGE_SIDE = 8192
"""Widest or tallest image read, px (InterHand2.6M's are 334 x 512): a larger one is refused
from its header, before decoding."""


def read_image(path: Path, width: int, height: int) -> np.ndarray:
    """The image at ``path`` as (H, W, 3) uint8 RGB; grey JPEGs come back with 3 channels.

    The header's size must be the data file's ``width`` x ``height`` (and at most
    :data:`MAX_IMAGE_SIDE`) before anything is decoded, and the file must be complete
    (:func:`~minternet.image_header.is_complete`): a truncated JPEG would decode with a grey
    fill. Raises :class:`FileNotFoundError` or :class:`InterHandFormatError` naming the file.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path}: image named by field 'file_name' not found")
    data = path.read_bytes()
    size = image_size(data)
    if size is None:
        raise InterHandFormatError(path, "file_name", "cannot be decoded as an image")
    if max(size) > MAX_IMAGE_SIDE:
        raise InterHandFormatError(
            path, "file_name", f"{size[0]}x{size[1]} px, above {MAX_IMAGE_SIDE} px a side"
        )
    if size != (width, height):
        # Camera 400412 stores rotated images under a landscape width and height.
        raise InterHandFormatError(
            path, "width/height", f"data file says {width}x{height}, image is {size[0]}x{size[1]}"
        )
    if not is_complete(data):
        raise InterHandFormatError(path, "file_name", "truncated: the image ends before its end")
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise InterHandFormatError(path, "file_name", "cannot be decoded as an image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class InterHandDataset(torch.utils.data.Dataset):
    """InterHand2.6M samples: raw (the image and its annotation fields) or cropped.

    ``root`` is a v1.0 tree (give ``split``) or a flat folder (``split`` not needed).
    ``dataset.index`` is the columnar index (``minternet.interhand.INDEX_FIELDS``), one row
    per sample.

    ``train=None`` gives raw samples: ``image`` (H, W, 3) uint8 RGB plus that row of every
    index field. ``train=False`` gives :func:`~minternet.transforms.make_sample` crops of
    ``input_size`` px without augmentation, ``train=True`` with ``augmentation`` drawn from
    ``np.random.default_rng([seed, epoch, i])``: the same whatever the worker count or
    order. Crops also carry ``index`` (the row) and ``sample_valid``.

    ``on_bad_image="skip"`` turns a missing, undecodable or mis-sized image into a logged
    skip: a black image, every weight 0 and ``sample_valid`` 0, counted in :attr:`skipped`.
    The default, "raise", raises an error naming the file.
    """

    def __init__(
        self,
        root: Path | str,
        split: str | None = None,
        *,
        cache_dir: Path | None = None,
        train: bool | None = None,
        input_size: int = INPUT_SIZE,
        augmentation: Augmentation = MMPOSE,
        seed: int = 0,
        on_bad_image: str = "raise",
    ) -> None:
        if on_bad_image not in ("raise", "skip"):
            raise ValueError(f"on_bad_image must be 'raise' or 'skip', got {on_bad_image!r}")
        self.root = Path(root)
        self.files = find_annotation_files(self.root, split)
        self.index = load_index(self.files, cache_dir)
        self.train, self.input_size, self.augmentation = train, input_size, augmentation
        self.seed, self.on_bad_image = seed, on_bad_image
        # Shared memory, so that DataLoader workers (persistent ones too) see the epoch the
        # main process sets, and the main process sees the skips the workers record.
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        self._bad = torch.zeros(len(self), dtype=torch.uint8).share_memory_()

    def __getstate__(self) -> dict[str, Any]:
        # DataLoader workers started by spawn or forkserver (macOS, Python >= 3.14) get the
        # dataset pickled: its mapped columns travel as their files, not their bytes.
        return {**self.__dict__, "index": index_state(self.index)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({**state, "index": index_from_state(state["index"])})

    def __len__(self) -> int:
        return len(self.index["image_id"])

    @property
    def epoch(self) -> int:
        """The epoch augmentation is drawn for; see :meth:`set_epoch`."""
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        """Draw augmentation for ``epoch`` from now on, in this process and its workers."""
        self._epoch.fill_(epoch)

    @property
    def skipped(self) -> int:
        """How many distinct samples had a bad image and were skipped, in any process."""
        return int(self._bad.sum())

    def select(self, rows: np.ndarray) -> InterHandDataset:
        """The same dataset restricted to ``rows`` (int indices into this one's index), e.g.
        an evenly spaced part of a large validation split. Settings and epoch are shared;
        rows are renumbered from 0 and the skip count starts afresh.
        """
        subset = copy.copy(self)
        subset.index = {k: v if k.startswith("cam_") else v[rows] for k, v in self.index.items()}
        subset._bad = torch.zeros(len(subset), dtype=torch.uint8).share_memory_()
        return subset

    def check_images(self, missing: str = "raise") -> InterHandDataset:
        """This dataset after checking that every sample's image file exists (one stat each).

        ``missing="raise"`` raises if any is absent, before a run starts rather than hours
        into it; ``"drop"`` returns the dataset without those samples (logging how many),
        for a tree unpacked from only some of the image archives.

        Raises:
            FileNotFoundError: naming the count and the first missing file.
        """
        if missing not in ("raise", "drop"):
            raise ValueError(f"missing must be 'raise' or 'drop', not {missing!r}")
        present = np.array([self.image_path(i).is_file() for i in range(len(self))], dtype=bool)
        absent = np.flatnonzero(~present)
        if not len(absent):
            return self
        where = f"{self.root} ({self.files.data.name})"
        if missing == "raise":
            raise FileNotFoundError(
                f"{len(absent)} of {len(self)} images of {where} are missing, the first "
                f"{self.image_path(int(absent[0]))}: download them, or leave those samples "
                "out (missing images 'drop')"
            )
        log.warning(
            "%s: %d of %d samples have no image file and are left out",
            where,
            len(absent),
            len(self),
        )
        return self.select(np.flatnonzero(present))

    def image_path(self, i: int) -> Path:
        """Absolute path of sample ``i``'s image."""
        return self.root / self.index["image_path"][i].decode()

    def camera(self, i: int) -> Camera:
        """The calibrated camera that took sample ``i``."""
        row = self.index["camera_row"][i]
        return Camera(
            *(self.index[f"cam_{k}"][row] for k in ("campos", "camrot", "focal", "princpt"))
        )

    def augmentation_params(self, i: int, epoch: int | None = None) -> AugParams | None:
        """The augmentation sample ``i`` gets in ``epoch`` (default: the current one), or
        None when not training.
        """
        if not self.train:
            return None
        epoch = self.epoch if epoch is None else epoch
        return sample_augmentation(np.random.default_rng([self.seed, epoch, i]), self.augmentation)

    def raw(self, i: int) -> dict[str, Any]:
        """Raw sample ``i``: ``image`` (H, W, 3) uint8 RGB plus that row of every index field
        and ``sample_valid`` (1, or 0 for a skipped bad image).
        """
        sample: dict[str, Any] = {
            k: v[i] for k, v in self.index.items() if not k.startswith("cam_")
        }
        path = self.image_path(i)
        sample["image_path"] = str(path)
        sample["seq_name"] = sample["seq_name"].decode()
        width, height = int(sample["width"]), int(sample["height"])
        sample["sample_valid"] = np.uint8(1)
        try:
            sample["image"] = read_image(path, width, height)
        except (FileNotFoundError, InterHandFormatError) as err:
            if self.on_bad_image == "raise":
                raise
            log.warning("sample %d skipped: %s", i, err)
            self._bad[i] = 1
            sample["image"] = np.zeros((height, width, 3), dtype=np.uint8)
            for key in ("sample_valid", "joint_valid", "rel_root_valid", "hand_type_valid"):
                sample[key] = np.zeros_like(sample[key])
        return sample

    def __getitem__(self, i: int) -> dict[str, Any]:
        """Sample ``i``, raw or cropped as ``train`` says (see the class docstring)."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"sample {i} out of range for {len(self)} samples")
        i %= len(self)  # a negative index and its positive twin draw the same augmentation
        raw = self.raw(i)
        if self.train is None:
            return raw
        sample = make_sample(raw, self.input_size, self.augmentation_params(i), self.augmentation)
        sample["index"] = np.int64(i)
        sample["sample_valid"] = np.float32(raw["sample_valid"])
        return sample


def open_run_datasets(
    config: TrainConfig, data: Path | str, size: int, is_main: bool = True
) -> tuple[InterHandDataset, InterHandDataset | None]:
    """The training crops and (``is_main``: the process that validates) the validation
    crops a run's ``config`` names in ``data``: bad images skipped and counted, missing ones
    as ``config.missing_images`` says; the validation set None when there is none, or
    ``config.val_samples`` evenly spaced samples of it."""
    aug = {"mmpose": MMPOSE, "original": ORIGINAL, "none": MMPOSE}[config.augmentation]
    train_set = InterHandDataset(
        data,
        config.train_split,
        train=config.augmentation != "none",
        input_size=size,
        augmentation=aug,
        seed=config.seed,
        on_bad_image="skip",
    ).check_images(config.missing_images)
    val_set = None
    if config.val_split and is_main:
        val_set = InterHandDataset(
            data, config.val_split, train=False, input_size=size, on_bad_image="skip"
        ).check_images(config.missing_images)
        if not len(val_set):  # e.g. none of its images were downloaded
            log.warning("%s: no %s sample has its image; no validation", data, config.val_split)
            val_set = None
        elif 0 < config.val_samples < len(val_set):
            rows = torch.linspace(0, len(val_set) - 1, config.val_samples).round()
            val_set = val_set.select(rows.long().numpy())
    return train_set, val_set
