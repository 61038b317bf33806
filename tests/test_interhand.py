from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import CAMERA_JSON, DATA_JSON, JOINT_JSON, MMPOSE_DERIVED, load_json, write_json

from minternet import Camera, InterHandDataset, interhand, json_records
from minternet.index_cache import read_cache, write_cache
from minternet.interhand import (
    INDEX_FIELDS,
    InterHandFormatError,
    build_index,
    find_annotation_files,
    load_index,
)
from minternet.synth.plan import SynthSpec
from minternet.synth.write import write_dataset


@pytest.fixture
def dataset(samples_dir: Path) -> InterHandDataset:
    return InterHandDataset(samples_dir)


def test_index_has_every_documented_field_with_one_row_per_sample(dataset):
    index = dataset.index
    assert len(dataset) == 4 and set(INDEX_FIELDS) <= set(index)
    for name, doc in INDEX_FIELDS.items():
        rows = len(index["cam_campos"]) if name.startswith("cam_") else 4
        dims = [d.strip() for d in doc[1 : doc.index(")")].split(",") if d.strip()]
        shape = tuple(int(d) if d.isdigit() else rows for d in dims)
        assert index[name].shape == shape, name
        assert index[name].dtype != object, name


def test_reader_reproduces_mmpose_derived_values(dataset):
    index = dataset.index
    for row, ann_id in enumerate(index["ann_id"]):
        abs_depth, rel_root, rel_valid, centre, side = MMPOSE_DERIVED[int(ann_id)]
        assert np.allclose(index["abs_depth"][row], abs_depth, atol=1e-3)
        assert index["rel_root_depth"][row] == pytest.approx(rel_root, abs=1e-3)
        assert index["rel_root_valid"][row] == rel_valid
        x, y, w, h = index["bbox"][row]
        assert (x + w / 2, y + h / 2) == pytest.approx(centre, abs=1e-3)
        assert 1.25 * max(w, h) == pytest.approx(side, abs=1e-3)


def test_validity_hand_types_and_placeholders(dataset):
    index = dataset.index
    by_id = {int(a): i for i, a in enumerate(index["ann_id"])}
    both, right_only, left_only = by_id[326750], by_id[471953], by_id[680801]
    assert index["joint_valid"][both].all()
    assert index["joint_valid"][right_only].tolist() == [1] * 21 + [0] * 21
    assert index["joint_valid"][left_only].tolist() == [0] * 21 + [1] * 21
    assert index["hand_type"].tolist() == [[1, 1], [1, 1], [0, 1], [1, 0]]
    assert index["hand_type_valid"].tolist() == [1, 1, 1, 1]
    # Absent hands keep the placeholder [1, 1, 1] in world space (all of joints 0-20 for the
    # left-only frame; 21-41 except 33 for the right-only one), masked by joint_valid.
    assert np.all(index["joint_world"][left_only, :21] == 1.0)
    placeholder = np.all(index["joint_world"][right_only, 21:] == 1.0, axis=1)
    assert placeholder.sum() == 20 and not placeholder[33 - 21]
    assert index["grey"].tolist() == [0, 0, 1, 1]
    assert index["camera"].tolist() == [400026, 400012, 410053, 410028]


def test_joint_cam_is_the_camera_transform_of_joint_world(dataset):
    for i in range(len(dataset)):
        cam = dataset.camera(i)
        assert isinstance(cam, Camera)
        expected = cam.world_to_camera(dataset.index["joint_world"][i].astype(np.float64))
        assert np.allclose(dataset.index["joint_cam"][i], expected, atol=1e-3)
        assert np.allclose(dataset.index["focal"][i], cam.focal)


def test_root_gating_invalidates_a_hand_without_a_valid_wrist(flat_copy):
    data = load_json(flat_copy / DATA_JSON)
    data["annotations"][0]["joint_valid"][41] = [0]  # interacting frame, left wrist dropped
    write_json(flat_copy / DATA_JSON, data)
    index = InterHandDataset(flat_copy).index
    assert index["joint_valid"][0].tolist() == [1] * 21 + [0] * 21
    assert index["rel_root_valid"][0] == 0


def test_raw_samples_are_rgb_images_of_the_annotated_size(dataset, samples_dir):
    for i in range(len(dataset)):
        sample = dataset[i]
        image = sample["image"]
        assert image.dtype == np.uint8 and image.shape == (sample["height"], sample["width"], 3)
        assert Path(sample["image_path"]).parent == samples_dir
        assert sample["joint_cam"].shape == (42, 3) and isinstance(sample["seq_name"], str)
    grey, colour = dataset[3]["image"].astype(int), dataset[0]["image"].astype(int)
    assert np.abs(grey[..., 0] - grey[..., 2]).max() <= 8  # monochrome camera 410028
    assert np.abs(colour[..., 0] - colour[..., 2]).mean() > 3
    with pytest.raises(IndexError):
        dataset[4]


def make_v1_tree(samples_dir: Path, root: Path, split: str = "test") -> None:
    """The four frames rearranged into the official v1.0 tree."""
    data = load_json(samples_dir / DATA_JSON)
    for image in data["images"]:
        name = image["file_name"]
        image["file_name"] = (
            f"Capture{image['capture']}/{image['seq_name']}/cam{image['camera']}/{name}"
        )
        (root / "images" / split / image["file_name"]).parent.mkdir(parents=True)
        shutil.copy(samples_dir / name, root / "images" / split / image["file_name"])
    ann_dir = root / "annotations" / split
    ann_dir.mkdir(parents=True)
    write_json(ann_dir / f"InterHand2.6M_{split}_data.json", data)
    for kind, src in (("camera", CAMERA_JSON), ("joint_3d", JOINT_JSON)):
        shutil.copy(samples_dir / src, ann_dir / f"InterHand2.6M_{split}_{kind}.json")


def test_v1_tree_and_flat_folder_give_the_same_index(samples_dir, tmp_path):
    make_v1_tree(samples_dir, tmp_path)
    tree, flat = InterHandDataset(tmp_path, split="test"), InterHandDataset(samples_dir)
    for name in INDEX_FIELDS:
        if name != "image_path":
            assert np.array_equal(tree.index[name], flat.index[name]), name
    assert tree.index["image_path"][0].decode() == (
        "images/test/Capture3/0390_dh_touchROM/cam400026/image69148.jpg"
    )
    assert np.array_equal(tree[1]["image"], flat[1]["image"])
    with pytest.raises(ValueError, match="split"):
        InterHandDataset(tmp_path)


def cache_folders(cache: Path) -> list[Path]:
    return sorted(p for p in cache.iterdir() if p.is_dir())


def test_cache_is_reused_and_rebuilt_when_a_source_changes(flat_copy, tmp_path):
    cache = tmp_path / "cache"
    first = InterHandDataset(flat_copy, cache_dir=cache)
    (folder,) = cache_folders(cache)
    legacy = folder.with_name(folder.name.rsplit("-", 1)[0] + ".npz")  # cache format 1
    legacy.write_bytes(b"an old cache")
    stamp = folder.stat().st_mtime_ns
    again = InterHandDataset(flat_copy, cache_dir=cache)
    assert cache_folders(cache) == [folder] and folder.stat().st_mtime_ns == stamp
    assert np.array_equal(again.index["joint_cam"], first.index["joint_cam"])
    data = load_json(flat_copy / DATA_JSON)
    data["annotations"][2]["hand_type_valid"] = 0
    write_json(flat_copy / DATA_JSON, data)
    changed = InterHandDataset(flat_copy, cache_dir=cache)
    assert changed.index["hand_type_valid"].tolist() == [1, 1, 0, 1]
    # The old folder is replaced, not kept beside the new one (the first dataset still reads
    # its unlinked files).
    (rebuilt,) = cache_folders(cache)
    assert rebuilt != folder and first.index["hand_type_valid"].tolist() == [1, 1, 1, 1]
    assert list(cache.iterdir()) == [rebuilt]
    # Same size, new mtime: still rebuilt.
    os.utime(flat_copy / DATA_JSON, ns=(stamp, stamp))
    assert InterHandDataset(flat_copy, cache_dir=cache).index["hand_type_valid"][2] == 0
    assert cache_folders(cache) != [rebuilt]


def test_cached_index_is_memory_mapped_read_only_and_exact(samples_dir, tmp_path):
    files = find_annotation_files(samples_dir)
    built = build_index(files)
    for opened in (load_index(files, tmp_path), load_index(files, tmp_path)):  # built, cached
        assert list(opened) == list(INDEX_FIELDS)
        for name, array in opened.items():
            assert array.dtype == built[name].dtype and np.array_equal(array, built[name]), name
            assert isinstance(array.base, np.memmap) and not array.flags.writeable, name
            with pytest.raises(ValueError, match="read-only"):
                array[0] = array[0]
    dataset = InterHandDataset(samples_dir, cache_dir=tmp_path)
    subset = dataset.select(np.array([3, 1]))
    assert subset.index["ann_id"].tolist() == dataset.index["ann_id"][[3, 1]].tolist()
    assert np.array_equal(subset[0]["joint_cam"], dataset[3]["joint_cam"])


DAMAGE = {
    "truncated": lambda f: f.write_bytes(f.read_bytes()[: f.stat().st_size // 2]),
    "deleted": lambda f: f.unlink(),
    "garbage": lambda f: f.write_bytes(b"not an npy file"),
    "short": lambda f: np.save(f, np.load(f)[:2]),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_cache_is_rebuilt(samples_dir, tmp_path, damage, caplog):
    files = find_annotation_files(samples_dir)
    expected = {k: np.array(v) for k, v in load_index(files, tmp_path).items()}
    (folder,) = cache_folders(tmp_path)
    DAMAGE[damage](folder / "joint_cam.npy")
    index = load_index(files, tmp_path)
    assert "damaged index cache" in caplog.text
    for name, array in expected.items():
        assert np.array_equal(index[name], array), name
    assert cache_folders(tmp_path) == [folder] and read_cache(folder, list(INDEX_FIELDS))


def test_a_second_writer_of_the_same_cache_keeps_the_first_copy(samples_dir, tmp_path):
    files = find_annotation_files(samples_dir)
    index = load_index(files, tmp_path)
    (folder,) = cache_folders(tmp_path)
    again = write_cache(folder, build_index(files))  # as a process that lost the race would
    assert list(tmp_path.iterdir()) == [folder]  # no temporary folder left behind
    for name, array in index.items():
        assert np.array_equal(again[name], array), name


def test_index_of_labels_only_files_equals_the_rendered_trees(tmp_path):
    spec = SynthSpec(seed=5, images={"train": 12}, captures=2, sequences=2, frames=3,
                     cameras=6, views=2)
    write_dataset(spec, tmp_path / "rendered", progress=False)
    write_dataset(replace(spec, annotations_only=True), tmp_path / "labels", progress=False)
    assert not (tmp_path / "labels" / "images").exists()
    rendered = build_index(find_annotation_files(tmp_path / "rendered", "train"))
    labels = build_index(find_annotation_files(tmp_path / "labels", "train"))
    assert len(rendered["image_id"]) == 12
    for name in INDEX_FIELDS:
        assert labels[name].dtype == rendered[name].dtype, name
        assert np.array_equal(labels[name], rendered[name]), name


def test_chunked_reading_gives_the_same_index_and_names_the_right_record(
    flat_copy, monkeypatch
):
    files = find_annotation_files(flat_copy)
    whole = build_index(files)
    for rows in (1, 3):
        monkeypatch.setattr(json_records, "CHUNK_ROWS", rows)
        monkeypatch.setattr(interhand, "CHUNK_ROWS", rows)
        chunked = build_index(files)
        for name in INDEX_FIELDS:
            assert np.array_equal(chunked[name], whole[name]), (rows, name)
    data = load_json(flat_copy / DATA_JSON)
    data["annotations"][3]["joint_valid"][5] = ["x"]
    write_json(flat_copy / DATA_JSON, data)
    with pytest.raises(InterHandFormatError) as err:
        build_index(files)
    assert err.value.field == "annotations[3].joint_valid"


def write_text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize("chunk", [1, 2, 5, 64])
def test_json_stream_walks_a_file_across_any_chunk_boundary(tmp_path, chunk):
    value = {"a": [{"x": 12345.678e-3, "y": [[1], [0]], "s": "\u00e9,]}"}, 7, -0.5, True, None],
             "b": {"k1": {"w": [1.5, 2]}, "k2": {}}, "c": []}
    path = write_text(tmp_path / "v.json", " \n" + json.dumps(value, indent=1) + "\n ")
    with json_records.JsonStream(path, chunk=chunk) as stream:
        walked = {}
        for key in stream.members("(file)"):
            if key == "a":
                walked[key] = [stream.value() for _ in stream.elements(".a")]
            elif key == "b":
                walked[key] = {k: stream.value() for k in stream.members(".b")}
            else:
                walked[key] = stream.value()
        stream.end()
    assert walked == value


def test_json_stream_hands_out_chunks_one_at_a_time(tmp_path, monkeypatch):
    monkeypatch.setattr(json_records, "CHUNK_ROWS", 2)
    records = [{"id": i} for i in range(5)]
    path = write_text(tmp_path / "v_data.json", json.dumps({"images": records, "x": 1}))
    with json_records.JsonStream(path) as stream:
        assert next(stream.members("(file)")) == "images"
        drawn, ids = [], []
        for chunk in stream.chunks(".images", "images[{}]"):
            drawn.append(chunk)
            ids.append(chunk.ints("id").tolist())
            assert chunk.record(0).where == f"images[{ids[-1][0]}]"
        assert ids == [[0, 1], [2, 3], [4]]
        # A chunk is emptied when the next is drawn: one chunk of records is alive at a time.
        assert [len(chunk) for chunk in drawn] == [0, 0, 1]
    # Even no records give one (empty) chunk, to read typed columns from.
    empty = list(json_records.chunked(path, "images[{}]", iter([])))
    assert len(empty) == 1 and empty[0].ints("id").shape == (0,)
    with pytest.raises(InterHandFormatError) as err:
        for chunk in json_records.chunked(path, ".{}.{}", [({"id": 1}, ("3", "7"))]):
            chunk.ints("world_coord")
    assert err.value.field == ".3.7.world_coord"


STREAM_ERRORS = {
    "truncated": ('{"a": [1, 2', "(file)", "not valid JSON"),
    "missing comma": ('{"a": [1 2]}', "(file)", "not valid JSON"),
    "extra data": ('{"a": []} []', "(file)", "extra data"),
    "not an array": ('{"a": {"b": 1}}', ".a", "expected an array, got dict"),
    "not UTF-8": (b'{"a": ["\xff"]}', "(file)", "UTF-8"),
}


@pytest.mark.parametrize("case", STREAM_ERRORS)
def test_json_stream_errors_name_the_file(tmp_path, case):
    text, field, problem = STREAM_ERRORS[case]
    path = tmp_path / "broken_data.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(InterHandFormatError, match=problem) as err:
        with json_records.JsonStream(path, chunk=4) as stream:
            for key in stream.members("(file)"):
                for _ in stream.elements(f".{key}"):
                    stream.value()
            stream.end()
    assert err.value.path == path and err.value.field == field


def test_annotations_of_the_wrong_type_name_the_file_and_the_field(flat_copy):
    data = load_json(flat_copy / DATA_JSON)
    data["annotations"] = {"0": data["annotations"][0]}
    write_json(flat_copy / DATA_JSON, data)
    with pytest.raises(InterHandFormatError, match=f"{DATA_JSON}.*expected an array") as err:
        InterHandDataset(flat_copy)
    assert err.value.field == ".annotations"
    (flat_copy / DATA_JSON).write_text(json.dumps(data)[:-40])  # cut mid-record
    with pytest.raises(InterHandFormatError, match=f"{DATA_JSON}.*not valid JSON"):
        InterHandDataset(flat_copy)


def _drop(record: dict, key: str) -> None:
    del record[key]


BREAKAGES = {
    "missing image width": (DATA_JSON, lambda d: _drop(d["images"][1], "width"), "width"),
    "string bbox": (DATA_JSON, lambda d: d["annotations"][0].update(bbox="wide"), "bbox"),
    "short joint_valid": (
        DATA_JSON,
        lambda d: d["annotations"][2]["joint_valid"].pop(),
        "joint_valid",
    ),
    "joint_valid of 2": (
        DATA_JSON,
        lambda d: d["annotations"][2]["joint_valid"][0].__setitem__(0, 2),
        "joint_valid",
    ),
    "unknown hand_type": (
        DATA_JSON,
        lambda d: d["annotations"][3].update(hand_type="both"),
        "hand_type",
    ),
    "float camera id": (DATA_JSON, lambda d: d["images"][0].update(camera=4.5), "camera"),
    "no annotations": (DATA_JSON, lambda d: _drop(d, "annotations"), "annotations"),
    "missing campos": (CAMERA_JSON, lambda c: _drop(c["3"]["campos"], "400026"), "campos"),
    "3x2 camrot": (
        CAMERA_JSON,
        lambda c: c["2"]["camrot"].update({"400012": [[1, 0], [0, 1], [0, 0]]}),
        "camrot",
    ),
    "missing frame": (JOINT_JSON, lambda j: _drop(j["7"], "29590"), "29590"),
    "NaN joints": (
        JOINT_JSON,
        lambda j: j["4"]["2017"]["world_coord"][5].__setitem__(0, float("nan")),
        "world_coord",
    ),
    "absolute file_name": (
        DATA_JSON,
        lambda d: d["images"][1].update(file_name="/etc/hostname"),
        "images[1].file_name",
    ),
    "file_name climbing out": (
        DATA_JSON,
        lambda d: d["images"][2].update(file_name="../../secret.jpg"),
        "images[2].file_name",
    ),
    "duplicate image id": (
        DATA_JSON,
        lambda d: d["images"][3].update(id=d["images"][0]["id"]),
        "images[3].id",
    ),
    "world_coord of 3 x 42": (
        JOINT_JSON,
        lambda j: j["4"]["2017"].update(
            world_coord=np.asarray(j["4"]["2017"]["world_coord"]).T.tolist()
        ),
        "world_coord",
    ),
    "zero-width box": (
        DATA_JSON,
        lambda d: d["annotations"][1]["bbox"].__setitem__(2, 0),
        "annotations[1].bbox",
    ),
    "negative box height": (
        DATA_JSON,
        lambda d: d["annotations"][2]["bbox"].__setitem__(3, -40.5),
        "annotations[2].bbox",
    ),
    "joint beyond float32": (
        JOINT_JSON,
        lambda j: j["4"]["2017"]["world_coord"][3].__setitem__(1, 1e39),
        "world_coord",
    ),
    "joints whose camera coordinates overflow float32": (
        JOINT_JSON,
        lambda j: j["4"]["2017"]["world_coord"].__setitem__(3, [3e38, 3e38, 3e38]),
        "2017.world_coord",
    ),
    "focal length 0": (
        CAMERA_JSON,
        lambda c: c["2"]["focal"].update({"400012": [0, 1200.0]}),
        "focal.400012",
    ),
    "image id beyond int64": (DATA_JSON, lambda d: d["images"][0].update(id=2**70), "id"),
    "deeply nested bbox": (
        DATA_JSON,
        lambda d: d["annotations"][0].update(bbox=[[[[[[[[[[[[1]]]]]]]]]]]]),
        "bbox",
    ),
}


@pytest.mark.parametrize("case", BREAKAGES)
def test_bad_annotations_name_the_file_and_the_field(flat_copy, case):
    file_name, breakage, field = BREAKAGES[case]
    value = load_json(flat_copy / file_name)
    breakage(value)
    write_json(flat_copy / file_name, value)
    with pytest.raises(InterHandFormatError) as err:
        InterHandDataset(flat_copy)
    assert file_name in str(err.value) and field in err.value.field
    if field.endswith(("].file_name", "].bbox")):  # the error names the image or annotation
        kind, row = re.fullmatch(r"(\w+)\[(\d+)\]\.\w+", field).groups()
        assert f" id {value[kind][int(row)]['id']}: " in str(err.value)


def test_json_nested_too_deeply_names_the_file(flat_copy):
    deep = "[" * 100_000 + "]" * 100_000
    data = (flat_copy / DATA_JSON).read_text()
    (flat_copy / DATA_JSON).write_text(data.replace('"bbox": [', f'"bbox": [{deep}, ', 1))
    with pytest.raises(InterHandFormatError, match=f"{DATA_JSON}.*nested too deeply"):
        InterHandDataset(flat_copy)
    camera = (flat_copy / CAMERA_JSON).read_text()
    (flat_copy / DATA_JSON).write_text(data)
    (flat_copy / CAMERA_JSON).write_text(camera.rstrip()[:-1] + f', "9": {deep}}}')
    with pytest.raises(InterHandFormatError, match=f"{CAMERA_JSON}.*nested too deeply"):
        InterHandDataset(flat_copy)


def test_malformed_json_missing_files_and_missing_images(flat_copy):
    (flat_copy / JOINT_JSON).write_text('{"3": {"69148": ')
    with pytest.raises(InterHandFormatError, match=f"{JOINT_JSON}.*not valid JSON"):
        InterHandDataset(flat_copy)
    (flat_copy / JOINT_JSON).unlink()
    with pytest.raises(FileNotFoundError, match=r"\*_joint_3d\.json"):
        InterHandDataset(flat_copy)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        find_annotation_files(flat_copy / "nowhere")


def test_missing_or_mis_sized_images_name_the_file(flat_copy, samples_dir):
    dataset = InterHandDataset(flat_copy)
    (flat_copy / "image29590.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"image29590\.jpg.*file_name"):
        dataset[2]
    # A portrait image under a landscape width/height, like camera 400412's files.
    shutil.copy(samples_dir / "image69148.jpg", flat_copy / "image2017.jpg")
    with pytest.raises(InterHandFormatError, match=r"image2017\.jpg.*width/height.*512x334"):
        dataset[3]
    (flat_copy / "image44669.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(InterHandFormatError, match=r"image44669\.jpg.*decoded"):
        dataset[1]


def test_truncated_and_oversized_images_are_refused_before_decoding(flat_copy, samples_dir):
    dataset = InterHandDataset(flat_copy)
    whole = (samples_dir / "image44669.jpg").read_bytes()
    (flat_copy / "image44669.jpg").write_bytes(whole[: len(whole) // 3])
    with pytest.raises(InterHandFormatError, match=r"image44669\.jpg.*truncated"):
        dataset[1]
    skipping = InterHandDataset(flat_copy, on_bad_image="skip")
    assert skipping[1]["sample_valid"] == 0 and skipping.skipped == 1
    # A 20000 x 20000 JPEG: refused from its header, without 1.2 GB of decoding.
    _, small = cv2.imencode(".jpg", np.zeros((16, 16, 3), np.uint8))
    data = bytearray(small.tobytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = (20000).to_bytes(2, "big") * 2
    (flat_copy / "image29590.jpg").write_bytes(bytes(data))
    with pytest.raises(InterHandFormatError, match=r"image29590\.jpg.*20000x20000 px, above"):
        dataset[2]


def test_cache_notices_an_edit_that_keeps_size_and_mtime(flat_copy, tmp_path):
    cache = tmp_path / "cache"
    assert InterHandDataset(flat_copy, cache_dir=cache).index["hand_type_valid"][2] == 1
    path = flat_copy / DATA_JSON
    stat = path.stat()
    text = path.read_text()
    edited = text.replace('"hand_type_valid": 1', '"hand_type_valid": 0', 3)
    edited = edited.replace('"hand_type_valid": 0', '"hand_type_valid": 1', 2)
    assert len(edited) == len(text) and edited != text
    path.write_text(edited)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert InterHandDataset(flat_copy, cache_dir=cache).index["hand_type_valid"][2] == 0


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_cache_keeps_the_index_in_memory(flat_copy, tmp_path, caplog):
    cache = tmp_path / "ro"
    cache.mkdir()
    cache.chmod(0o500)
    try:
        assert len(InterHandDataset(flat_copy, cache_dir=cache)) == 4
    finally:
        cache.chmod(0o700)
    assert "MINTERNET_CACHE" in caplog.text


def test_cache_path_that_is_a_file_keeps_the_index_in_memory(
    flat_copy, tmp_path, monkeypatch, caplog
):
    (tmp_path / "plain").write_text("not a folder")
    monkeypatch.setenv("MINTERNET_CACHE", str(tmp_path / "plain"))
    dataset = InterHandDataset(flat_copy)
    assert len(dataset) == 4 and not isinstance(dataset.index["joint_cam"], np.memmap)
    assert "cannot write the index cache" in caplog.text and "MINTERNET_CACHE" in caplog.text
