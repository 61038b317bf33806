"""minternet.download against a local HTTP server serving a tiny InterHand2.6M-like release."""

from __future__ import annotations

import errno
import functools
import hashlib
import io
import itertools
import shutil
import tarfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import Server

from minternet import archive, fetching, transfer
from minternet import download as dl
from minternet.__main__ import main
from minternet.archive import ArchiveError, UnsafeArchiveError
from minternet.dataset import InterHandDataset
from minternet.synth.plan import SynthSpec
from minternet.synth.write import write_dataset

SPLITS = ("train", "test")
WRAPPER = "InterHand2.6M_5fps_batch1"  # the official tar nests images/ one folder down


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    spec = SynthSpec(images={"train": 8, "test": 8}, captures=1)
    write_dataset(spec, root, workers=1, progress=False)
    return root


def write_release(www: Path, image_tar: bytes, n_parts: int = len(dl.PARTS)) -> None:
    """Cut ``image_tar`` into the first ``n_parts`` part names and list their md5s."""
    www.mkdir(parents=True, exist_ok=True)
    cuts = [len(image_tar) * i // n_parts for i in range(n_parts + 1)]
    lines = []
    for name, a, b in zip(dl.PARTS[:n_parts], cuts[:-1], cuts[1:], strict=True):
        (www / name).write_bytes(image_tar[a:b])
        lines.append(f"{hashlib.md5(image_tar[a:b]).hexdigest()}  {name}\n")
    (www / dl.CHECKSUM_FILE).write_text("".join(lines))


@pytest.fixture
def release(synth_root: Path, tmp_path: Path) -> Path:
    """Served folder: the synth images as 44 tar parts plus CHECKSUM, annotations.zip."""
    www = tmp_path / "www"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(synth_root / "images", arcname=f"{WRAPPER}/images")
    write_release(www, buffer.getvalue())
    with zipfile.ZipFile(www / "annotations.zip", "w") as zf:
        for path in sorted((synth_root / "annotations").rglob("*")):
            zf.write(path, "annotations/" + path.relative_to(synth_root / "annotations").as_posix())
    return www


@pytest.fixture
def server(release: Path) -> Iterator[Server]:
    srv = Server(release)
    yield srv
    srv.stop()


def run(server: Server, tmp_path: Path, parts: str = "all", **kwargs: Any) -> dict[str, Any]:
    options: dict[str, Any] = dict(
        annotations=server.url + "annotations.zip", base_url=server.url,
        archives=tmp_path / "archives", splits=SPLITS, backoff=0.0, progress=False,
        log=lambda _: None)
    return dl.fetch_interhand(tmp_path / "out", parts, **{**options, **kwargs})


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_full_download_unpacks_a_tree_the_dataset_opens(
    server: Server, synth_root: Path, tmp_path: Path
) -> None:
    report = run(server, tmp_path)
    out = tmp_path / "out"
    assert files(out / "images") == files(synth_root / "images")  # the wrapper folder is gone
    assert len(InterHandDataset(out, "train")) == 8
    assert report["splits"]["train"] == {"images": 8, "full_release": 1_361_062}
    assert report["images"] == {"parts": 44, "files": 16, "cut_member": None}
    assert sorted(p.name for p in (tmp_path / "archives").iterdir()) == [dl.CHECKSUM_FILE]
    assert len(server.gets()) == 46  # CHECKSUM, 44 parts, annotations
    run(server, tmp_path)  # a rerun finds everything unpacked and fetches nothing
    assert len(server.gets()) == 46


@pytest.mark.parametrize("ignore_range", [False, True], ids=["range", "server-ignores-range"])
def test_interrupted_transfer_is_resumed(
    release: Path, synth_root: Path, tmp_path: Path, ignore_range: bool
) -> None:
    server = Server(release, ignore_range=ignore_range)
    part = dl.PARTS[5]
    server.drop[part] = 1
    try:
        run(server, tmp_path, keep_archives=True)
    finally:
        server.stop()
    assert (tmp_path / "archives" / part).read_bytes() == (release / part).read_bytes()
    first, again = server.gets(part)
    size = (release / part).stat().st_size
    assert first[2] is None and again[2] == f"bytes={size // 2}-"  # the rest was asked for
    assert files(tmp_path / "out" / "images") == files(synth_root / "images")


def test_transfer_failing_every_retry_keeps_the_partial_file(
    server: Server, tmp_path: Path
) -> None:
    part = dl.PARTS[0]
    server.drop[part] = 3
    with pytest.raises(fetching.TransferError, match=rf"{part}: transfer failed 3 times") as info:
        run(server, tmp_path, retries=2)
    assert "run again to resume" in str(info.value)
    assert transfer.partial_path(tmp_path / "archives" / part).is_file()
    assert not (tmp_path / "out" / "images").exists()
    run(server, tmp_path)  # the server recovered: the next run resumes and finishes
    assert server.gets(part)[-1][2] is not None


def test_corrupt_part_is_reported_deleted_and_never_unpacked(
    server: Server, release: Path, tmp_path: Path
) -> None:
    part = dl.PARTS[7]
    data = bytearray((release / part).read_bytes())
    data[10] ^= 0xFF
    (release / part).write_bytes(bytes(data))
    with pytest.raises(fetching.CorruptFileError, match=rf"{part}: md5 .* differs"):
        run(server, tmp_path)
    left = [p.name for p in (tmp_path / "archives").iterdir()]
    assert part not in left and transfer.partial_path(part).name not in left
    assert not (tmp_path / "out" / "images").exists()


def test_missing_part_names_it_before_any_download(
    server: Server, release: Path, tmp_path: Path
) -> None:
    (release / dl.PARTS[30]).unlink()
    missing = rf"{dl.PARTS[30]}: not on the server \(HTTP 404"
    with pytest.raises(fetching.MissingFileError, match=missing):
        run(server, tmp_path)
    assert server.gets() == []


def add_path_max_chain(tar: tarfile.TarFile) -> None:
    """Nested links whose resolved path passes PATH_MAX, where ``os.path.realpath`` stops
    resolving (the CVE-2025-4517 family): ``images/escape`` reads as a folder inside the root,
    but the kernel follows it two levels above ``images``, where ``escape/PWNED.txt`` lands."""
    folder, path = "d" * 247, "images"
    for step in "abcdefghijklmnop":
        (made := tarfile.TarInfo(f"{path}/{folder}")).type = tarfile.DIRTYPE
        tar.addfile(made)
        link = tarfile.TarInfo(f"{path}/{step}")
        link.type, link.linkname = tarfile.SYMTYPE, folder
        tar.addfile(link)
        path = f"{path}/{folder}"
    deep = "/".join("abcdefghijklmnop") + "/" + "l" * 254
    for name, target in ((f"images/{deep}", "../" * 16), ("images/escape", f"{deep}/../..")):
        link = tarfile.TarInfo(name)
        link.type, link.linkname = tarfile.SYMTYPE, target
        tar.addfile(link)
    payload = tarfile.TarInfo("images/escape/PWNED.txt")
    payload.size = 5
    tar.addfile(payload, io.BytesIO(b"pwned"))


def evil_tar(kind: str, outside: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        good = tarfile.TarInfo("images/train/ok.txt")
        good.size = 2
        tar.addfile(good, io.BytesIO(b"ok"))
        if kind == "symlink-chain":  # each link looks inside; together they lead out
            for name in ("images/a", "images/a/b"):
                link = tarfile.TarInfo(name)
                link.type, link.linkname = tarfile.SYMTYPE, ".."
                tar.addfile(link)
            return buffer.getvalue()
        if kind == "path-max-chain":
            add_path_max_chain(tar)
            return buffer.getvalue()
        member = tarfile.TarInfo({"dotdot": "../../evil", "absolute": str(outside / "evil")}
                                 .get(kind, "images/train/evil"))
        if kind in ("symlink", "hardlink"):
            member.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
            member.linkname = str(outside) if kind == "symlink" else "../../../evil"
            tar.addfile(member)
        else:
            member.size = 4
            tar.addfile(member, io.BytesIO(b"evil"))
    return buffer.getvalue()


@pytest.mark.parametrize(
    "kind", ["dotdot", "absolute", "symlink", "hardlink", "symlink-chain", "path-max-chain"]
)
def test_member_escaping_the_root_is_refused(tmp_path: Path, kind: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    www = tmp_path / "www"
    write_release(www, evil_tar(kind, outside), n_parts=1)
    server = Server(www)
    try:
        with pytest.raises(UnsafeArchiveError, match="outside the "):
            run(server, tmp_path, parts="aa", annotations=None)
    finally:
        server.stop()
    assert list(outside.iterdir()) == []
    assert not list(tmp_path.rglob("PWNED.txt"))
    assert not (tmp_path / "evil").exists() and not (tmp_path / "out" / "evil").exists()
    assert not (tmp_path / "out" / "images" / "train" / "evil").exists()


def test_local_annotation_archive(synth_root: Path, tmp_path: Path) -> None:
    archive = tmp_path / "annotations.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(synth_root / "annotations", arcname="annotations")
    report = dl.fetch_interhand(tmp_path / "out", "annotations", annotations=str(archive),
                                splits=SPLITS, log=lambda _: None)
    assert report["annotations"] == {"archive": archive.name, "files": 6}
    assert files(tmp_path / "out" / "annotations") == files(synth_root / "annotations")
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as zf:
        zf.writestr("annotations/../../evil", b"evil")
    with pytest.raises(UnsafeArchiveError, match="outside the root"):
        dl.fetch_interhand(tmp_path / "out2", "annotations",
                           annotations=str(tmp_path / "evil.zip"), log=lambda _: None)
    assert not (tmp_path / "evil").exists()


def test_full_disk_is_found_before_starting(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dl.shutil, "disk_usage", lambda _: SimpleNamespace(free=1))
    with pytest.raises(dl.DiskFullError, match=r"GB needed but 0\.00 GB free"):
        run(server, tmp_path)
    assert server.gets() == []


def test_disk_filling_up_while_writing(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Full(io.FileIO):
        def write(self, data: Any) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(transfer, "open", functools.partial(Full, closefd=True), raising=False)
    with pytest.raises(dl.DiskFullError, match=r"CHECKSUM: disk full while downloading"):
        run(server, tmp_path)
    monkeypatch.delattr(transfer, "open")

    def no_space(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shutil, "copyfileobj", no_space)
    with pytest.raises(dl.DiskFullError, match="disk full while unpacking"):
        run(server, tmp_path)


def test_first_parts_only_drops_the_cut_member(
    server: Server, release: Path, synth_root: Path, tmp_path: Path
) -> None:
    # The fewest parts, from half of them, whose end falls inside a file's bytes (a cut in
    # the padding between files cuts nothing, and where the cuts fall depends on the JPEGs).
    parts = [(release / name).read_bytes() for name in dl.PARTS]
    with tarfile.open(fileobj=io.BytesIO(b"".join(parts))) as tar:
        spans = [(m.offset_data, m.offset_data + m.size) for m in tar.getmembers() if m.isreg()]
    ends = list(itertools.accumulate(len(part) for part in parts))  # where each part stops
    count = next(k for k in range(len(parts) // 2, len(parts))
                 if any(a < ends[k - 1] < b for a, b in spans))
    report = run(server, tmp_path, parts=f"annotations,aa-{dl.PARTS[count - 1][-2:]}")
    got, want = files(tmp_path / "out" / "images"), files(synth_root / "images")
    assert 0 < len(got) < len(want) and all(want[name] == data for name, data in got.items())
    assert report["images"]["cut_member"] is not None
    assert report["splits"]["test"]["images"] + report["splits"]["train"]["images"] == len(got)


def test_dry_run_prints_the_plan_and_fetches_nothing(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["download", "--out", str(tmp_path / "out"), "--base-url", server.url,
                 "--annotations", server.url + "annotations.zip", "--archives",
                 str(tmp_path / "archives"), "--dry-run"])
    captured = capsys.readouterr()
    assert code == 0
    assert dl.PARTS[0] in captured.err and "GB to download" in captured.err
    assert '"bytes_to_download"' in captured.out
    assert server.gets() == [] and len(server.log) == 45  # HEAD requests only
    assert not (tmp_path / "out").exists() and not (tmp_path / "archives").exists()


def test_cli_errors_exit_2_with_a_message(
    server: Server, release: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["download", "--out", str(tmp_path / "out"), "--archives", str(tmp_path / "a")]
    assert main(args) == 2
    assert "Google Drive" in capsys.readouterr().err  # annotations need --annotations
    (release / dl.PARTS[0]).unlink()
    assert main([*args, "--base-url", server.url, "--parts", "aa", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("minternet download: ") and dl.PARTS[0] in err
    assert "Traceback" not in err
    assert main([*args, "--parts", "ab"]) == 2
    assert "start at aa" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("parts", "annotations", "count"),
    [("all", True, 44), ("annotations", True, 0), ("images", False, 44),
     ("aa-ac, annotations", True, 3), ("aa,ab", False, 2)],
)
def test_select(parts: str, annotations: bool, count: int) -> None:
    wanted, chosen = dl.select(parts)
    assert (wanted, chosen) == (annotations, dl.PARTS[:count])


@pytest.mark.parametrize("parts", ["zz", "ab", "aa,ac", ""])
def test_select_rejects(parts: str) -> None:
    with pytest.raises(ValueError, match="--parts"):
        dl.select(parts)


def test_a_body_longer_than_announced_is_refused_as_it_comes(
    server: Server, tmp_path: Path
) -> None:
    part = dl.PARTS[3]
    server.extra[part] = b"x" * 100_000  # HEAD announced the true size; the GET is longer
    with pytest.raises(fetching.TransferError, match=rf"{part}: the server announces \d+ bytes"):
        run(server, tmp_path, retries=3)
    assert len(server.gets(part)) == 1  # not retried: it would fail the same way
    assert not (tmp_path / "out" / "images").exists()


def test_a_trickling_server_meets_the_total_deadline(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.trickle.add(dl.CHECKSUM_FILE)
    started = time.monotonic()
    with pytest.raises(fetching.TransferError, match="not complete by the deadline"):
        run(server, tmp_path, deadline=0.3)
    assert time.monotonic() - started < 5
    args = ["download", "--out", str(tmp_path / "o"), "--archives", str(tmp_path / "a"),
            "--base-url", server.url, "--parts", "aa", "--quiet"]
    assert main([*args, "--deadline", "0.3"]) == 2
    err = capsys.readouterr().err
    assert "deadline" in err and "Traceback" not in err


def test_a_checksum_file_that_is_not_hex_stops_before_any_part(
    server: Server, release: Path, tmp_path: Path
) -> None:
    (release / dl.CHECKSUM_FILE).write_text(f"not-a-digest  {dl.PARTS[0]}\n")
    with pytest.raises(dl.DownloadError, match=r"line 1 is not '<32 hex digits>  <name>'"):
        run(server, tmp_path, parts="aa", annotations=None)
    assert [name for _, name, _ in server.gets()] == [dl.CHECKSUM_FILE]


def test_a_zip_bomb_is_refused_before_it_fills_the_disk(tmp_path: Path) -> None:
    bomb = tmp_path / "annotations.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("annotations/train/big.json", bytes(64 << 20))  # 64 MiB of zeros, ~64 kB
    assert bomb.stat().st_size * archive.MAX_RATIO < 64 << 20
    with pytest.raises(ArchiveError, match="unpacks to more than"):
        archive.unpack_annotations(bomb, tmp_path / "out")
    assert not (tmp_path / "out" / "annotations" / "train" / "big.json").exists()


def test_a_zip_announcing_more_than_the_free_space_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as zf:
        zf.writestr("annotations/train/a.json", b"{}" * 1000)
    monkeypatch.setattr(archive.shutil, "disk_usage", lambda _: SimpleNamespace(free=100))
    with pytest.raises(ArchiveError, match=r"unpacks to 0\.00 GB but .* free"):
        archive.unpack_annotations(tmp_path / "a.zip", tmp_path / "out")


def test_an_archive_with_too_many_members_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "many.tar"
    with tarfile.open(path, "w") as tar:
        for i in range(archive.MAX_MEMBERS["annotations"] + 1):
            tar.addfile(tarfile.TarInfo(f"annotations/train/{i}.json"), io.BytesIO())
    with pytest.raises(ArchiveError, match="more than 10000 members"):
        archive.unpack_annotations(path, tmp_path / "out")


def annotation_archive(path: Path, members: dict[str, bytes | None]) -> Path:
    """A tar at ``path``: a folder for each None, else a file of those bytes."""
    with tarfile.open(path, "w:gz" if path.name.endswith(".gz") else "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
            else:
                info.size = len(data)
            tar.addfile(info, None if data is None else io.BytesIO(data))
    return path


def test_broken_archives_raise_an_error_naming_them(tmp_path: Path) -> None:
    good = annotation_archive(tmp_path / "a.tar.gz", {"annotations/train/a.json": b"{}" * 5000})
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ArchiveError, match=r"cut\.tar\.gz: "):
        archive.unpack_annotations(cut, tmp_path / "out1")
    clash = annotation_archive(tmp_path / "clash.tar", {"annotations/train": b"file",
                                                       "annotations/train/a.json": b"{}"})
    with pytest.raises(ArchiveError, match=r"clash\.tar: .* needs .*train to be a folder"):
        archive.unpack_annotations(clash, tmp_path / "out2")
    with zipfile.ZipFile(tmp_path / "crc.zip", "w") as zf:
        zf.writestr("annotations/train/a.json", b"0123456789" * 100)
    data = bytearray((tmp_path / "crc.zip").read_bytes())
    data[data.index(b"0123456789") + 5] ^= 0x01  # stored, so the CRC catches it
    (tmp_path / "crc.zip").write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match=r"crc\.zip: not a readable .*CRC"):
        archive.unpack_annotations(tmp_path / "crc.zip", tmp_path / "out3")
    assert not (tmp_path / "out3" / "annotations" / "train" / "a.json").exists()


def test_zip_links_and_links_already_in_the_root_are_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    with zipfile.ZipFile(tmp_path / "link.zip", "w") as zf:
        info = zipfile.ZipInfo("annotations/train")
        info.external_attr = (0o120777 << 16)  # a symbolic link, as Info-ZIP stores one
        zf.writestr(info, str(outside))
        zf.writestr("annotations/train/a.json", b"{}")
    with pytest.raises(UnsafeArchiveError, match="is a link"):
        archive.unpack_annotations(tmp_path / "link.zip", tmp_path / "out")
    # A link planted in the root earlier is not followed either (tar and zip alike).
    root = tmp_path / "out2"
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "train").symlink_to(outside)
    with zipfile.ZipFile(tmp_path / "plain.zip", "w") as zf:
        zf.writestr("annotations/train/a.json", b"{}")
    tar = annotation_archive(tmp_path / "plain.tar", {"annotations/train/a.json": b"{}"})
    for path in (tmp_path / "plain.zip", tar):
        with pytest.raises(UnsafeArchiveError, match="through the link"):
            archive.unpack_annotations(path, root)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as chain:  # through --annotations as well
        add_path_max_chain(chain)
    (tmp_path / "chain.tar").write_bytes(buffer.getvalue())
    with pytest.raises(UnsafeArchiveError, match="is a link"):
        archive.unpack_annotations(tmp_path / "chain.tar", tmp_path / "out3")
    assert not list(tmp_path.rglob("PWNED.txt"))
    (root / "annotations" / "x.json").symlink_to(outside / "x.json")
    leaf = annotation_archive(tmp_path / "leaf.tar", {"annotations/x.json": b"{}"})
    with pytest.raises(UnsafeArchiveError, match="which is a link"):
        archive.unpack_annotations(leaf, root)
    assert list(outside.iterdir()) == []


def test_retries_and_deadline_are_checked_when_parsed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for flag, value in (("--retries", "-1"), ("--deadline", "0"), ("--deadline", "soon")):
        with pytest.raises(SystemExit) as info:
            main(["download", "--out", str(tmp_path), flag, value])
        assert info.value.code == 2 and f"argument {flag}" in capsys.readouterr().err


@pytest.mark.parametrize("cut_into", ["header", "data"])
def test_a_prefix_cut_inside_a_header_or_a_file_keeps_what_came_before(
    tmp_path: Path, cut_into: str
) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        # b's long name (as the real tree's paths) goes into a pax record before its header.
        for name, size in (("images/a.jpg", 700), ("images/" + "b" * 120 + ".jpg", 900)):
            info = tarfile.TarInfo(f"{WRAPPER}/{name}")
            info.size = size
            tar.addfile(info, io.BytesIO(bytes(size)))
    whole = buffer.getvalue()
    # a's header (512), a's data (1024), b's pax header and record (1024), b's header (512),
    # b's data: cut where b's header would start, or in b's data.
    end = 512 + 1024 + 1024 + (0 if cut_into == "header" else 512 + 300)
    prefix = tmp_path / "prefix.tar"
    prefix.write_bytes(whole[:end])
    for cut_ok in (True, False):
        with tarfile.open(fileobj=archive.JoinedFiles([prefix]), mode="r|") as tar:
            if not cut_ok:
                with pytest.raises(ArchiveError, match=r"prefix\.tar: ends inside"):
                    archive.unpack_tar(tar, tmp_path / "out", "images", "prefix.tar")
                continue
            written, cut = archive.unpack_tar(tar, tmp_path / "out", "images", "prefix.tar",
                                              cut_ok=True)  # fmt: skip
        assert written == 1 and (tmp_path / "out" / "images" / "a.jpg").stat().st_size == 700
        assert len(list((tmp_path / "out" / "images").iterdir())) == 1
        header_cut = f"(the header after {WRAPPER}/images/a.jpg)"
        assert cut == (header_cut if cut_into == "header" else "images/" + "b" * 120 + ".jpg")
