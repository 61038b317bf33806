"""Annotation index at InterHand2.6M's train size (1,361,062 annotations): minternet's streamed,
memory-mapped index against the reference implementations' way, on the same synthetic files.

    python bench/index_scale.py [--annotations DIR] [--fraction 16]

The baseline does what mmpose and the original code do: ``json.load`` of the three files and
one dict of numpy arrays per annotation (the parsed data file stays alive, as mmpose's COCO
object does), then ``copy.deepcopy`` of a record per sample. At full size it needs more RAM
than is safe next to other work, so it is measured on the first 1/FRACTION of the images
(with their annotations and joint frames) and extrapolated linearly; the output marks those
numbers. Every measurement runs in a fresh process.

Worker memory: each forked DataLoader worker reads its own /proc/self/smaps_rollup at its
start, after an epoch of random rows, and after a full ``gc.collect()`` (which a long-running
worker eventually runs: it writes to every tracked Python object, copying its page). The
target applies to USS (Private_Clean + Private_Dirty: what the worker alone holds); PSS adds
a share of the pages it maps with others (for ours, the index files in the page cache, there
once however many workers map them). A run with no index at all gives what any worker holds;
the baseline's extrapolation scales only the part above it.
"""

from __future__ import annotations

import argparse
import copy
import gc
import itertools
import json
import math
import os
import re
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from minternet.annotation_columns import HAND_TYPES
from minternet.interhand import AnnotationFiles, find_annotation_files, load_index
from minternet.json_records import JsonStream
from minternet.skeleton import JOINTS_PER_HAND, ROOTS
from minternet.synth.plan import SynthSpec
from minternet.synth.write import write_dataset

TRAIN_SIZE = 1_361_062
# 27 captures (Capture0-26) x 60 sequences x 100 frames x 10 views: room for the train size.
SPEC = SynthSpec(images={"train": TRAIN_SIZE}, captures=27, sequences=60, frames=100,
                 cameras=40, views=10, annotations_only=True)
ROWS_PER_ITEM = 4096
MB = 2**20
MEMINFO = "/proc/meminfo"
TARGETS = {"build": 180.0, "peak": 6 * 1024.0, "open": 2.0, "worker": 100.0}


def proc_mb(field: str, path: str = "/proc/self/status") -> float:
    """A ``kB`` field of a /proc file in MB, e.g. VmHWM (peak RSS) of /proc/self/status."""
    text = Path(path).read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1)) / 1024


def smaps() -> dict[str, float]:
    """USS, PSS and Private_Dirty of this process in MB, from /proc/self/smaps_rollup."""
    text = Path("/proc/self/smaps_rollup").read_text()
    kb = {k: int(v) for k, v in re.findall(r"^(\w+):\s+(\d+) kB", text, re.M)}
    return {"uss": (kb["Private_Clean"] + kb["Private_Dirty"]) / 1024, "pss": kb["Pss"] / 1024,
            "dirty": kb["Private_Dirty"] / 1024}


def in_child(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a fresh process, so its peak RSS and its workers are its own."""
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def stream_array(path: Path, key: str) -> Iterator[Any]:
    """The elements of the array ``key`` of a JSON object file, decoded one at a time."""
    with JsonStream(path) as stream:
        for name in stream.members("(file)"):
            if name != key:
                stream.value()
                continue
            for _ in stream.elements(key):
                yield stream.value()


def write_prefix(files: AnnotationFiles, root: Path, images: int) -> AnnotationFiles:
    """The first ``images`` images of ``files`` with their annotations, the joint frames they
    show and every camera, as a v1.0 train tree under ``root``.
    """
    data = {"images": list(itertools.islice(stream_array(files.data, "images"), images))}
    ids = {image["id"] for image in data["images"]}
    data["annotations"] = [a for a in stream_array(files.data, "annotations")
                           if a["image_id"] in ids]
    frames = {(str(i["capture"]), str(i["frame_idx"])) for i in data["images"]}
    joints: dict[str, dict] = {}
    with JsonStream(files.joint_3d) as stream:
        for capture in stream.members("(file)"):
            for frame in stream.members(capture):
                record = stream.value()
                if (capture, frame) in frames:
                    joints.setdefault(capture, {})[frame] = record
    folder = root / "annotations" / "train"
    folder.mkdir(parents=True, exist_ok=True)
    for kind, value in (("data", data), ("joint_3d", joints)):
        (folder / f"InterHand2.6M_train_{kind}.json").write_text(json.dumps(value))
    shutil.copy(files.camera, folder / "InterHand2.6M_train_camera.json")
    return find_annotation_files(root, "train")


def baseline_db(files: AnnotationFiles) -> tuple[dict, list[dict]]:
    """The reference implementations' index: the parsed data file and one dict per annotation
    holding numpy arrays (camera and joint files are dropped after the build, as there).
    """
    cameras, joints, data = (json.loads(p.read_text()) for p in
                             (files.camera, files.joint_3d, files.data))
    ann_of = {}
    for ann in data["annotations"]:
        ann_of.setdefault(ann["image_id"], ann)
    db = []
    for image in data["images"]:
        ann, capture, cam = ann_of[image["id"]], str(image["capture"]), image["camera"]
        campos, camrot, focal, princpt = (np.array(cameras[capture][k][cam], dtype=np.float32)
                                          for k in ("campos", "camrot", "focal", "princpt"))
        world = np.array(joints[capture][str(image["frame_idx"])]["world_coord"], np.float32)
        joint_cam = (world - campos) @ camrot.T
        valid = np.array(ann["joint_valid"], dtype=np.float32).reshape(2, JOINTS_PER_HAND)
        valid = (valid * valid[:, -1:]).reshape(-1)
        abs_depth = joint_cam[list(ROOTS), 2]
        joints_3d = np.zeros_like(joint_cam)
        joints_3d[:, :2] = joint_cam[:, :2] / joint_cam[:, 2:] * focal + princpt
        joints_3d[:, 2] = joint_cam[:, 2] - np.repeat(abs_depth, JOINTS_PER_HAND)
        db.append({
            "image_file": os.path.join(files.image_prefix, image["file_name"]),
            "rotation": 0,
            "joints_3d": joints_3d,
            "joints_3d_visible": np.repeat(valid[:, None], 3, axis=1),
            "hand_type": np.array(HAND_TYPES[ann["hand_type"]], dtype=np.float32),
            "hand_type_valid": ann["hand_type_valid"],
            "rel_root_depth": float(abs_depth[1] - abs_depth[0]),
            "rel_root_valid": float(valid[ROOTS[0]] * valid[ROOTS[1]]),
            "abs_depth": abs_depth,
            "joints_cam": joint_cam,
            "focal": focal,
            "princpt": princpt,
            "bbox": np.array(ann["bbox"], dtype=np.float32),
            "bbox_score": 1,
            "bbox_id": len(db),
        })
    return data, db


def measure_build(kind: str, files: AnnotationFiles, cache_dir: Path) -> dict[str, float]:
    """Seconds, peak RSS (MB) and RSS before the build (MB, the imports) of one build."""
    before = proc_mb("VmRSS")
    start = time.perf_counter()
    if kind == "ours":
        load_index(files, cache_dir)
    else:
        baseline_db(files)
    return {"seconds": time.perf_counter() - start, "peak": proc_mb("VmHWM"),
            "imports": before}


def measure_open(root: Path, cache_dir: Path) -> float:
    """Seconds to open the cached index of the train split as a training run does."""
    from minternet import InterHandDataset

    start = time.perf_counter()
    InterHandDataset(root, "train", cache_dir=cache_dir)
    return time.perf_counter() - start


COLLECT = "collect"
"""An item that runs a full garbage collection in the worker instead of reading rows."""


class RowReader:
    """A map-style dataset whose item is a batch of rows: it reads each row as a training
    sample does (``read_row``) and returns (worker id, the worker's smaps in MB, rows read).
    The item :data:`COLLECT` runs a full collection instead, as a long-running worker
    eventually does: it writes to every tracked object, so forked Python objects get copied.
    """

    def __init__(self, size: int, read_row: Callable[[int], Any]) -> None:
        self.size, self.read_row = size, read_row

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, rows: np.ndarray | str) -> tuple[int, dict[str, float], int]:
        import torch

        if isinstance(rows, str):
            gc.collect()
            rows = np.arange(0)
        for i in rows.tolist():
            self.read_row(i)
        return torch.utils.data.get_worker_info().id, smaps(), len(rows)


def row_reader(kind: str, files: AnnotationFiles, cache_dir: Path) -> RowReader:
    """Ours: the fields :meth:`InterHandDataset.raw` takes from the memory-mapped index, copied
    (so their bytes are read). Baseline: ``copy.deepcopy`` of the record, as mmpose does.
    None: no index at all, for what a worker holds whatever the dataset.
    """
    if kind == "none":
        return RowReader(0, lambda i: i)
    if kind == "baseline":
        _, db = baseline_db(files)
        return RowReader(len(db), lambda i: copy.deepcopy(db[i]))
    from minternet import InterHandDataset

    dataset = InterHandDataset(files.data.parents[2], "train", cache_dir=cache_dir)
    fields = [(k, v) for k, v in dataset.index.items() if not k.startswith("cam_")]

    def read_row(i: int) -> dict[str, Any]:
        return {**{k: np.array(v[i]) for k, v in fields}, "camera": dataset.camera(i)}

    return RowReader(len(dataset), read_row)


def measure_workers(
    kind: str, files: AnnotationFiles, cache_dir: Path, workers: int
) -> dict[str, Any]:
    """Each worker's smaps (MB) at its start, after an epoch of random rows read by
    ``workers`` forked DataLoader workers, and after a full collection; and the rows read.
    """
    import torch

    reader = row_reader(kind, files, cache_dir)
    rows = np.random.default_rng(0).permutation(len(reader))
    # The loader hands items out to the workers in turn, so each worker gets one of the
    # first ``workers`` items (empty: it reports its memory before reading a row) and one
    # of the last ones.
    chunks = [rows[at : at + ROWS_PER_ITEM] for at in range(0, len(rows), ROWS_PER_ITEM)]
    items = [rows[:0]] * workers + chunks + [COLLECT] * workers
    reports: dict[int, list[dict]] = {}
    total = 0
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "This DataLoader will create")  # 4 workers, 2 cores
        # Fork, Linux's default (this process was spawned, which changed its default).
        loader = torch.utils.data.DataLoader(
            reader, batch_size=None, sampler=items, num_workers=workers,
            multiprocessing_context="fork",
        )
        for worker, memory, count in loader:
            reports.setdefault(worker, []).append(memory)
            total += count
    return {
        "start": {w: r[0] for w, r in reports.items()},
        "end": {w: r[-2] for w, r in reports.items()},
        "collected": {w: r[-1] for w, r in reports.items()},
        "rows": total,
    }


def largest_worker(result: dict[str, Any], when: str) -> float:
    """The largest worker USS (MB) at ``when``: "end" of the epoch or "collected"."""
    return max(m["uss"] for m in result[when].values())


def folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.iterdir()) / MB


def number(value: float) -> str:
    return f"{value:,.3f}" if value < 10 else f"{value:,.0f}"


def verdict(value: float, target: float, unit: str) -> str:
    margin = target - value
    if margin >= 0:
        return f"met ({number(margin)} {unit} to spare)"
    return f"MISSED by {number(-margin)} {unit}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotations", type=Path,
                        help="dataset root with annotations/train/*.json at the train size; "
                        "written there when missing (default: a temporary folder)")
    parser.add_argument("--fraction", type=int, default=16,
                        help="the baseline reads the first 1/FRACTION of the images")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        root = args.annotations or tmp / "full"
        if not (root / "annotations" / "train").is_dir():
            start = time.perf_counter()
            write_dataset(SPEC, root, workers=1, progress=False)
            print(f"wrote the annotation files in {time.perf_counter() - start:.0f} s")
        compare(find_annotation_files(root, "train"), tmp, args.fraction)


def compare(files: AnnotationFiles, tmp: Path, fraction: int) -> None:
    """Measure and print; ``tmp`` holds our cache and the baseline's fraction of the files."""
    cache = tmp / "cache"
    ours_build = in_child(measure_build, "ours", files, cache)
    (folder,) = cache.iterdir()
    rows = len(np.load(folder / "image_id.npy", mmap_mode="r"))
    part_rows = math.ceil(rows / fraction)
    part, factor = write_prefix(files, tmp / "part", part_rows), rows / part_rows
    ours_open = in_child(measure_open, files.data.parents[2], cache)
    base_build = in_child(measure_build, "baseline", part, cache)
    base_grown = base_build["peak"] - base_build["imports"]
    ours_workers, base_workers, no_index = {}, {}, {}
    for workers in (2, 4):
        ours_workers[workers] = in_child(measure_workers, "ours", files, cache, workers)
        no_index[workers] = in_child(measure_workers, "none", files, cache, workers)
        # Never let the baseline's copy-on-write growth push the machine into swap or OOM.
        need, available = base_grown * (1 + workers) * 1.5, proc_mb("MemAvailable", MEMINFO)
        if need < available / 2:
            base_workers[workers] = in_child(measure_workers, "baseline", part, cache, workers)
        else:
            print(f"baseline, {workers} workers: skipped, it may need {need:,.0f} MB "
                  f"of the {available:,.0f} MB available")

    sizes = {kind: getattr(files, kind).stat().st_size / MB
             for kind in ("data", "camera", "joint_3d")}
    print(f"machine: {os.cpu_count()} cores, {proc_mb('MemTotal', MEMINFO) / 1024:.1f} GB RAM; "
          f"{rows:,} annotations; JSON MB: " + ", ".join(f"{k} {v:,.1f}" for k, v in sizes.items()))
    print(f"baseline (*): measured on the first {part_rows:,} images (1/{fraction}), "
          f"extrapolated linearly x{factor:.2f}; for the peak RAM and worker USS, the part "
          "above what the imports alone take")
    table = [
        ("build time, s", ours_build["seconds"], base_build["seconds"] * factor, "build", "s"),
        ("peak RAM of the build, MB", ours_build["peak"],
         base_build["imports"] + base_grown * factor, "peak", "MB"),
        ("open time, index cached, s", ours_open, base_build["seconds"] * factor, "open", "s"),
    ]
    for when, label in (("end", "after the epoch"), ("collected", "then a full gc")):
        for workers, result in ours_workers.items():
            # What a worker holds with no index at all does not grow with the annotations.
            fixed = largest_worker(no_index[workers], when)
            grown = largest_worker(base_workers[workers], when) - fixed if (
                workers in base_workers) else math.nan
            base = fixed + grown * factor
            table.append((f"worker USS, {workers} workers, {label}, MB",
                          largest_worker(result, when), base, "worker", "MB"))
    print(f"{'':44} {'ours':>9} {'baseline*':>10} {'ratio':>9}   target for ours")
    for name, ours, base, target, unit in table:
        print(f"{name:44} {number(ours):>9} {number(base):>10} {base / ours:>8,.1f}x   "
              f"<= {number(TARGETS[target])}: {verdict(ours, TARGETS[target], unit)}")
    print(f"{'index size on disk, MB':44} {folder_mb(folder):>9,.0f} {'none':>10}"
          f"             (the baseline has no cache: it re-parses the JSON at every start)")
    print(f"the build peaks include the imports: ours {ours_build['imports']:,.0f} MB, "
          f"baseline {base_build['imports']:,.0f} MB")
    print("each worker after the epoch | after a full gc, MB USS / PSS / Private_Dirty "
          "(baseline: as measured on its fraction):")
    for name, runs in (("ours", ours_workers), ("baseline", base_workers), ("no index", no_index)):
        for workers, result in runs.items():
            cells = "; ".join(
                " | ".join(f"{m['uss']:,.0f} / {m['pss']:,.0f} / {m['dirty']:,.0f}"
                           for m in (result["end"][w], result["collected"][w]))
                for w in sorted(result["end"]))
            print(f"  {name:8} {workers} workers, {result['rows']:,} rows: {cells}")


if __name__ == "__main__":
    main()
