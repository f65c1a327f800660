"""The one tar writer and safe extractor (worker_toolkit._tarballs), on both sides of the job."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from ssm_rules import extract
from ssm_rules.backends.local.archives import make_tarball
from ssm_rules.safe_tar import deterministic_tar_gz
from worker_toolkit._tarballs import (
    UnsafeArchiveError,
    extract_tarball,
    tree_entries,
    write_tar_gz_file,
)


@pytest.fixture(params=["data_filter", "fallback"])
def extraction(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both paths: Python's data filter, and the check a container Python without it takes."""
    if request.param == "fallback":  # such a tarfile has none of the filter's names
        for name in ("data_filter", "FilterError", "OutsideDestinationError"):
            monkeypatch.delattr(tarfile, name)
        for name in ("LinkOutsideDestinationError", "SpecialFileError", "AbsolutePathError"):
            monkeypatch.delattr(tarfile, name)
    return str(request.param)


def _tar(path: Path, members: list[tarfile.TarInfo]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for m in members:
            tar.addfile(m, io.BytesIO(b"x" * m.size) if m.isfile() else None)
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


@pytest.mark.parametrize(
    "member",
    [
        _member("../escape.txt"),
        _member("sub/../../escape.txt"),
        _member("link", tarfile.SYMTYPE, "/etc/passwd"),
        _member("link", tarfile.SYMTYPE, "../../escape.txt"),
        _member("hard", tarfile.LNKTYPE, "../escape.txt"),
        _member("fifo", tarfile.FIFOTYPE),
    ],
    ids=["dotdot", "inner-dotdot", "symlink-abs", "symlink-up", "hardlink-up", "fifo"],
)
def test_extraction_refuses_what_leaves_the_destination(
    tmp_path: Path, member: tarfile.TarInfo, extraction: str
) -> None:
    src = _tar(tmp_path / "bad.tar.gz", [member])
    with pytest.raises(UnsafeArchiveError, match="refusing to extract"):
        extract_tarball(src, tmp_path / "a" / "out")
    assert not (tmp_path / "a" / "escape.txt").exists() and not (tmp_path / "escape.txt").exists()


def test_an_absolute_name_cannot_land_outside(tmp_path: Path, extraction: str) -> None:
    """The data filter strips the leading "/" (the member lands inside), the fallback
    refuses it: either way nothing is written at the absolute path."""
    name = str(tmp_path / "abs.txt")
    src = _tar(tmp_path / "bad.tar.gz", [_member(name)])
    out = tmp_path / "out"
    if extraction == "fallback":
        with pytest.raises(UnsafeArchiveError, match="refusing to extract"):
            extract_tarball(src, out)
    else:
        extract_tarball(src, out)
        assert (out / name.lstrip("/")).is_file()
    assert not Path(name).exists()


def test_links_inside_and_empty_directories_survive_a_round_trip(
    tmp_path: Path, extraction: str
) -> None:
    src = tmp_path / "src"
    (src / "empty").mkdir(parents=True)
    (src / "sub").mkdir()
    (src / "sub" / "f.txt").write_text("f")
    (src / "rel").symlink_to("sub/f.txt")
    os.link(src / "sub" / "f.txt", src / "hard.txt")
    archive = tmp_path / "a.tar.gz"
    write_tar_gz_file(tree_entries(src), archive)
    with tarfile.open(archive) as tar:
        kinds = {m.name: m.type for m in tar.getmembers()}
    assert kinds == {
        "empty": tarfile.DIRTYPE,
        "hard.txt": tarfile.REGTYPE,
        "rel": tarfile.SYMTYPE,
        "sub": tarfile.DIRTYPE,
        "sub/f.txt": tarfile.LNKTYPE,  # the second name of one inode, as `tar` stores it
    }
    out = tmp_path / "out"
    extract_tarball(archive, out)
    assert (out / "empty").is_dir() and not any((out / "empty").iterdir())
    assert os.readlink(out / "rel") == "sub/f.txt" and (out / "rel").read_text() == "f"
    assert (out / "hard.txt").read_text() == "f"


def test_the_output_carrier_is_left_out_unless_asked_for(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / ".ssm_files" / "runs").mkdir(parents=True)
    (src / ".ssm_files" / "runs" / "m.json").write_text("{}")
    (src / "o.txt").write_text("o")
    archive = tmp_path / "output.tar.gz"
    write_tar_gz_file(tree_entries(src), archive)
    extract(archive, tmp_path / "user")  # what a user's download rule sees
    assert sorted(p.name for p in (tmp_path / "user").iterdir()) == ["o.txt"]
    extract_tarball(archive, tmp_path / "all", skip_carrier=False)
    assert (tmp_path / "all" / ".ssm_files" / "runs" / "m.json").is_file()


def test_the_code_bundle_depends_on_names_and_contents_only(tmp_path: Path) -> None:
    a, b = tmp_path / "a.py", tmp_path / "b.sh"
    a.write_text("print(1)\n")
    b.write_text("echo 1\n")
    b.chmod(0o700)
    link = tmp_path / "l.py"
    link.symlink_to(a)
    first = deterministic_tar_gz([("b.sh", b), ("a.py", a), ("l.py", link)])
    os.utime(a, (1, 1))
    a.chmod(0o600)
    assert deterministic_tar_gz([("a.py", a), ("l.py", link), ("b.sh", b)]) == first
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        found = {m.name: (m.type, m.mode, m.mtime, m.uid, m.uname) for m in tar.getmembers()}
    assert found == {  # sorted, no times or owners, a link stored as what it points to
        "a.py": (tarfile.REGTYPE, 0o644, 0, 0, ""),
        "b.sh": (tarfile.REGTYPE, 0o755, 0, 0, ""),
        "l.py": (tarfile.REGTYPE, 0o644, 0, 0, ""),
    }
    assert first[4:8] == b"\0\0\0\0"  # no time in the gzip header


def test_merged_host_archives_keep_the_first_hosts_entry(tmp_path: Path) -> None:
    """model.tar.gz of a multi-instance job (local backend): the hosts' model dirs merged,
    algo-1's file winning, an empty directory kept."""
    h1, h2 = tmp_path / "algo-1", tmp_path / "algo-2"
    for host in (h1, h2):
        (host / "ckpt").mkdir(parents=True)
        (host / "m.txt").write_text(host.name)
    (h2 / "empty").mkdir()
    make_tarball([h1, h2], tmp_path / "model.tar.gz")
    out = tmp_path / "out"
    extract_tarball(tmp_path / "model.tar.gz", out)
    assert (out / "m.txt").read_text() == "algo-1"
    assert (out / "empty").is_dir() and (out / "ckpt").is_dir()
