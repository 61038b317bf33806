"""Writing a planned synthetic world as an InterHand2.6M v1.0 tree (appendix A).

Output layout, identical to the real dataset's::

    images/{split}/Capture{c}/{seq_name}/cam{camera}/image{frame_idx}.jpg
    annotations/{split}/InterHand2.6M_{split}_{data,camera,joint_3d}.json

The joint file keeps world coordinates with the placeholder ``[1, 1, 1]`` for an absent
hand, and the camera file every camera of each capture's dome. The JSON is streamed to
disk, so ``annotations_only`` scales to InterHand2.6M's full size; the same spec writes the
same bytes, with one rendering process or several.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import IO

import numpy as np
from tqdm.auto import tqdm

from minternet.skeleton import JOINTS_PER_HAND
from minternet.synth import render
from minternet.synth.plan import (
    KIND_CODES,
    CaptureRig,
    PlannedSequence,
    SynthSpec,
    capture_rig,
    plan_split,
    render_view,
)


def _render_jpegs(job: tuple[SynthSpec, PlannedSequence]) -> list[bytes]:
    spec, planned = job
    rig = capture_rig(spec, planned.split, planned.capture)
    jpegs = []
    for frame, cam, _ in planned.views:
        image = render_view(spec, rig, planned.motion, frame, cam).image
        image = render.to_grey(image) if rig.cameras[cam].grey else image
        jpegs.append(render.encode_jpeg(image, spec.jpeg_quality))
    return jpegs


def _rendered(
    spec: SynthSpec, plans: Iterator[PlannedSequence], workers: int
) -> Iterator[tuple[PlannedSequence, list[bytes] | None]]:
    """Each planned sequence with its JPEGs (None when only annotations are written)."""
    if spec.annotations_only:
        yield from ((planned, None) for planned in plans)
    elif workers <= 1:
        yield from ((planned, _render_jpegs((spec, planned))) for planned in plans)
    else:
        plans_list = list(plans)  # joints and labels only: small next to the images
        with ProcessPoolExecutor(workers) as pool:
            yield from zip(
                plans_list, pool.map(_render_jpegs, [(spec, p) for p in plans_list]), strict=True
            )


class _JsonArray:
    """Items of one JSON array streamed to a temporary file."""

    def __init__(self, folder: Path) -> None:
        self.file: IO[str] = tempfile.TemporaryFile("w+", dir=folder)
        self.count = 0

    def add(self, text: str) -> None:
        self.file.write(("," if self.count else "") + text)
        self.count += 1

    def copy_to(self, out: IO[str]) -> None:
        self.file.seek(0)
        shutil.copyfileobj(self.file, out)
        self.file.close()


def _num(values: np.ndarray, decimals: int = 4) -> list:
    """Floats rounded (0.1 micrometre, 1e-4 px by default) so the files stay small and stable."""
    return np.round(np.asarray(values, dtype=np.float64), decimals).tolist()


def write_split(
    spec: SynthSpec, root: Path, split: str, workers: int = 1, progress: bool = True
) -> dict[str, int]:
    """Write one split under ``root``; returns counts of images by hand type and skipped views."""
    ann_dir = root / "annotations" / split
    ann_dir.mkdir(parents=True, exist_ok=True)
    images, annotations = _JsonArray(ann_dir), _JsonArray(ann_dir)
    joints: dict[int, _JsonArray] = {}
    cameras: dict[str, dict[str, dict[str, list]]] = {}
    counts = dict.fromkeys(KIND_CODES, 0)
    with tqdm(total=spec.images[split], desc=split, unit="img", disable=not progress) as bar:
        for planned, jpegs in _rendered(spec, plan_split(spec, split), workers):
            rig = capture_rig(spec, split, planned.capture)
            _write_sequence(root, split, planned, rig, jpegs, images, annotations, joints, cameras)
            counts[planned.kind] += len(planned.views)
            bar.update(len(planned.views))
    prefix = ann_dir / f"InterHand2.6M_{split}"
    with open(f"{prefix}_data.json", "w") as out:
        out.write('{"images": [')
        images.copy_to(out)
        out.write('], "annotations": [')
        annotations.copy_to(out)
        out.write("]}")
    with open(f"{prefix}_joint_3d.json", "w") as out:
        out.write("{")
        for n, capture in enumerate(sorted(joints)):
            out.write(f'{", " if n else ""}"{capture}": {{')
            joints[capture].copy_to(out)
            out.write("}")
        out.write("}")
    with open(f"{prefix}_camera.json", "w") as out:
        json.dump(cameras, out)
    return counts


def _write_sequence(
    root: Path,
    split: str,
    planned: PlannedSequence,
    rig: CaptureRig,
    jpegs: list[bytes] | None,
    images: _JsonArray,
    annotations: _JsonArray,
    joints: dict[int, _JsonArray],
    cameras: dict,
) -> None:
    capture, motion = planned.capture, planned.motion
    frame_valid = [[bool(v)] for v in np.repeat(motion.present, JOINTS_PER_HAND)]
    part = joints.setdefault(capture, _JsonArray(root / "annotations" / split))
    for f in range(len(motion.joint_world)):
        record = {
            "world_coord": _num(motion.joint_world[f]),
            "joint_valid": frame_valid,
            "hand_type": planned.kind,
            "hand_type_valid": True,
            "seq": planned.name,
        }
        part.add(f'"{planned.first_frame + f}": {json.dumps(record)}')
    if str(capture) not in cameras:  # like the real file: every camera of the dome
        cameras[str(capture)] = {
            # Rotations keep 9 decimals: 1e-4 would move a joint 1 m away by 0.1 mm.
            key: {
                c.name: _num(getattr(c.camera, key), 9 if key == "camrot" else 4)
                for c in rig.cameras
            }
            for key in ("campos", "camrot", "focal", "princpt")
        }
    for n, (frame, cam, labels) in enumerate(planned.views):
        spec_cam = rig.cameras[cam]
        frame_idx = planned.first_frame + frame
        file_name = f"Capture{capture}/{planned.name}/cam{spec_cam.name}/image{frame_idx}.jpg"
        image_id = images.count
        images.add(
            json.dumps(
                {
                    "id": image_id,
                    "file_name": file_name,
                    "width": spec_cam.width,
                    "height": spec_cam.height,
                    "capture": capture,
                    "subject": capture,
                    "seq_name": planned.name,
                    "camera": spec_cam.name,
                    "frame_idx": frame_idx,
                }
            )
        )
        annotations.add(
            json.dumps(
                {
                    "id": image_id,
                    "image_id": image_id,
                    "bbox": _num(labels["bbox"]),
                    "joint_valid": [[int(v)] for v in labels["joint_valid"]],
                    "hand_type": planned.kind,
                    "hand_type_valid": labels["hand_type_valid"],
                }
            )
        )
        if jpegs is not None:
            path = root / "images" / split / file_name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(jpegs[n])


def write_dataset(
    spec: SynthSpec, root: Path | str, workers: int = 1, progress: bool = True
) -> dict[str, dict[str, int]]:
    """Write every split of ``spec`` under ``root``; returns image counts by split and kind."""
    root = Path(root)
    return {split: write_split(spec, root, split, workers, progress) for split in spec.images}
