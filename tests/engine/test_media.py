"""MediaStore: atomic, repeatable writes in a run; an overlay in a dry run; the site's
path rules (no escape by `..`, absolute paths or links)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runner.engine.media import TEMP_SUFFIX, MediaChange, MediaLog, MediaStore
from runner.errors import MediaError, SiteError
from runner.site import Site, safe_relpath
from tests.helpers import snapshot


@pytest.fixture
def site(tmp_path: Path) -> Site:
    root = tmp_path / "site"
    (root / "media").mkdir(parents=True)
    (root / "media" / "a.bin").write_bytes(b"original")
    return Site(root)


def _temps(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(TEMP_SUFFIX)]


# -- real writes ---------------------------------------------------------------------


def test_write_creates_directories_and_leaves_no_temporary(site: Site) -> None:
    store = MediaStore(site)
    store.write_bytes("new/deep/file.bin", b"data")
    assert (site.root / "new/deep/file.bin").read_bytes() == b"data"
    assert _temps(site.root) == []
    assert store.log.changes == [MediaChange("write", "new/deep/file.bin", size=4)]


def test_rewrite_keeps_the_permissions_of_the_existing_file(site: Site) -> None:
    target = site.root / "media" / "a.bin"
    target.chmod(0o640)
    MediaStore(site).write_bytes("media/a.bin", b"new")
    assert target.read_bytes() == b"new"
    assert target.stat().st_mode & 0o7777 == 0o640


def test_a_failed_write_leaves_the_old_file_and_no_temporary(site: Site) -> None:
    store = MediaStore(site)
    with pytest.raises(RuntimeError), store.writer("media/a.bin") as handle:
        handle.write(b"half of the new cont")
        raise RuntimeError("killed half way")
    assert (site.root / "media" / "a.bin").read_bytes() == b"original"
    assert _temps(site.root) == []
    assert store.log.changes == []


def test_a_failed_write_into_new_directories_leaves_no_directories(site: Site) -> None:
    before = snapshot(site.root)
    store = MediaStore(site)
    with pytest.raises(RuntimeError), store.writer("reports/deep/r.txt") as handle:
        handle.write(b"half")
        raise RuntimeError("the template failed")
    assert snapshot(site.root) == before
    (site.root / "reports").mkdir()  # a directory that was there stays
    with pytest.raises(RuntimeError), store.writer("reports/r.txt"):
        raise RuntimeError("again")
    assert (site.root / "reports").is_dir()


def test_a_temporary_left_by_a_killed_write_is_reused(site: Site) -> None:
    leftover = site.root / "media" / f".a.bin{TEMP_SUFFIX}"
    leftover.write_bytes(b"garbage from a write killed by a power cut" * 100)
    MediaStore(site).write_bytes("media/a.bin", b"again")
    assert (site.root / "media" / "a.bin").read_bytes() == b"again"
    assert _temps(site.root) == []


def test_copy_move_remove_mkdir_are_repeatable(site: Site) -> None:
    store = MediaStore(site)
    store.copy("media/a.bin", "media/b.bin")
    assert (site.root / "media/b.bin").read_bytes() == b"original"
    store.move("media/b.bin", "archive/b.bin")
    store.symlink("links/b", "archive/b.bin")
    store.write_bytes("media/extra.bin", b"x")
    store.remove("media/extra.bin")
    (site.root / "gone").mkdir()
    store.rmdir_empty("gone")
    store.mkdir("empty/dir")
    moved = (site.root / "archive/b.bin").stat().st_ino
    # The same calls again, as a step resumed after a kill before its commit makes
    # them: nothing is done twice, and what was found done is logged as this attempt's
    # work, so the step's media summary is the same however often it was interrupted.
    again = MediaStore(site)
    again.move("media/b.bin", "archive/b.bin")
    again.symlink("links/b", "archive/b.bin")
    again.remove("media/extra.bin")
    again.rmdir_empty("gone")
    again.mkdir("empty/dir")  # a directory may have been there before the step: not logged
    assert not (site.root / "media/b.bin").exists()
    assert (site.root / "archive/b.bin").read_bytes() == b"original"
    assert (site.root / "archive/b.bin").stat().st_ino == moved
    assert os.readlink(site.root / "links/b") == "../archive/b.bin"
    assert not (site.root / "media/extra.bin").exists() and not (site.root / "gone").exists()
    assert (site.root / "empty/dir").is_dir()
    assert [c.op for c in store.log.changes] == [
        "copy", "move", "symlink", "write", "remove", "rmdir", "mkdir",
    ]  # fmt: skip
    assert [c.describe() for c in again.log.changes] == [
        c.describe() for c in store.log.changes if c.op in ("move", "symlink", "remove", "rmdir")
    ]
    with pytest.raises(MediaError, match="cannot move media/zzz"):
        store.move("media/zzz", "media/yyy")


def test_missing_media_is_a_media_error(site: Site) -> None:
    store = MediaStore(site)
    with pytest.raises(MediaError, match=r"media/none\.bin is missing"):
        store.read_bytes("media/none.bin")
    with pytest.raises(MediaError, match="cannot be read"):
        store.read_bytes("media")  # a directory


# -- dry run ---------------------------------------------------------------------------


def test_a_dry_run_changes_no_byte_of_the_site_but_sees_its_own_writes(site: Site) -> None:
    before = snapshot(site.root)
    store = MediaStore(site, dry_run=True)
    store.write_bytes("media/a.bin", b"planned")
    store.write_bytes("reports/r.txt", b"report")
    store.copy("media/a.bin", "media/c.bin")
    store.mkdir("made")
    assert store.read_bytes("media/a.bin") == b"planned"
    assert store.read_bytes("media/c.bin") == b"planned"
    assert store.exists("reports/r.txt") and store.exists("reports") and store.exists("made")
    assert store.listdir("media") == ["a.bin", "c.bin"]
    assert store.listdir("reports") == ["r.txt"]
    store.move("media/c.bin", "moved/c.bin")
    assert not store.exists("media/c.bin") and store.read_bytes("moved/c.bin") == b"planned"
    store.remove("media/a.bin")
    assert not store.exists("media/a.bin")
    assert store.listdir("media") == []
    with pytest.raises(MediaError):
        store.read_bytes("media/a.bin")
    assert snapshot(site.root) == before
    overlay = store.overlay_dir
    assert overlay is not None and overlay.is_dir()
    assert site.root not in overlay.parents
    store.close()
    assert not overlay.exists()
    assert snapshot(site.root) == before


def test_a_dry_run_logs_the_same_changes_as_a_real_run(site: Site, tmp_path: Path) -> None:
    def work(store: MediaStore) -> list[str]:
        store.write_bytes("out/x.bin", b"12345")
        store.copy("media/a.bin", "out/y.bin")
        store.remove("out/x.bin")
        return store.log.lines()

    real_site = Site(tmp_path / "copy")
    (real_site.root / "media").mkdir(parents=True)
    (real_site.root / "media" / "a.bin").write_bytes(b"original")
    planned = MediaStore(site, dry_run=True)
    assert work(planned) == work(MediaStore(real_site))
    planned.close()


def test_media_log_summarises_many_changes() -> None:
    log = MediaLog(keep=3)
    for i in range(5):
        log.add(MediaChange("write", f"reports/r{i}.txt", size=10))
    log.add(MediaChange("remove", "cache/x"))
    assert log.lines() == [
        "remove 1 file(s) under cache/",
        "write 5 file(s) under reports/ (50 bytes)",
    ]
    few = MediaLog()
    few.add(MediaChange("copy", "b", source="a", size=1))
    assert few.lines() == ["copy a -> b (1 bytes)"]


# -- the site's path rules ----------------------------------------------------------------


@pytest.mark.parametrize("dry_run", [False, True])
@pytest.mark.parametrize(
    "rel", ["../outside.bin", "/tmp/outside.bin", "a/../../x", "x\x00y", ".recover/journal"]
)
def test_writes_cannot_leave_the_site(site: Site, rel: str, dry_run: bool) -> None:
    before = snapshot(site.root.parent)
    store = MediaStore(site, dry_run=dry_run)
    with pytest.raises(SiteError):
        store.write_bytes(rel, b"x")
    store.close()
    assert snapshot(site.root.parent) == before


@pytest.mark.parametrize("dry_run", [False, True])
def test_links_out_of_the_site_are_refused(site: Site, tmp_path: Path, dry_run: bool) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    os.symlink(outside, site.root / "media" / "escape")
    os.symlink(outside / "secret", site.root / "media" / "secret-link")
    store = MediaStore(site, dry_run=dry_run)
    with pytest.raises(SiteError, match="outside the site via a link"):
        store.read_bytes("media/escape/secret")
    with pytest.raises(SiteError, match="outside the site via a link"):
        store.read_bytes("media/secret-link")
    with pytest.raises(SiteError, match="outside the site via a link"):
        store.write_bytes("media/escape/new", b"x")
    with pytest.raises(SiteError, match="outside the site via a link"):
        store.copy("media/a.bin", "media/secret-link")
    store.close()
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    assert (outside / "secret").read_bytes() == b"secret"


def test_links_inside_the_site_are_fine(site: Site) -> None:
    os.symlink(site.root / "media", site.root / "alias")
    assert MediaStore(site).read_bytes("alias/a.bin") == b"original"


@pytest.mark.parametrize(
    ("rel", "clean"),
    [("a/./b//c", "a/b/c"), ("a/x/../b", "a/b"), ("a\\b", "a/b"), ("./x", "x")],
)
def test_safe_relpath_normalises(rel: str, clean: str) -> None:
    assert str(safe_relpath(rel)) == clean


@pytest.mark.parametrize(
    ("rel", "message"),
    [
        ("", "empty"),
        ("a\x00b", "NUL"),
        ("/abs", "absolute"),
        ("C:x", "absolute"),
        ("..", "leaves"),
        ("a/../..", "leaves"),
        ("a/..", "site directory itself"),
        (".recover", "state directory"),
    ],
)
def test_safe_relpath_refuses(rel: str, message: str) -> None:
    with pytest.raises(SiteError, match=message):
        safe_relpath(rel)


# -- planted links and special files (nothing outside the site is read or written) ------


@pytest.mark.parametrize("target", ["media/a.bin", "media/new.bin", "reports/r.txt"])
def test_a_link_planted_at_the_temporary_name_is_not_followed(
    site: Site, tmp_path: Path, target: str
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"precious")
    path = site.root / target
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}{TEMP_SUFFIX}")
    tmp.symlink_to(outside)
    MediaStore(site).write_bytes(target, b"repaired")
    assert outside.read_bytes() == b"precious"
    assert path.read_bytes() == b"repaired" and not path.is_symlink()
    assert not os.path.lexists(tmp)


def test_a_link_at_the_target_that_leaves_the_site_is_refused(site: Site, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"precious")
    (site.root / "media" / "out.bin").symlink_to(outside)
    with pytest.raises(SiteError, match="outside the site"):
        MediaStore(site).write_bytes("media/out.bin", b"x")
    with pytest.raises(SiteError, match="outside the site"):
        MediaStore(site).read_bytes("media/out.bin")
    assert outside.read_bytes() == b"precious"


def test_a_fifo_is_refused_before_it_is_opened(site: Site) -> None:
    os.mkfifo(site.root / "media" / "pipe.bin")
    with pytest.raises(
        MediaError, match=r"cannot be read: it is a FIFO \(named pipe\), not a regular file"
    ):
        MediaStore(site).read_bytes("media/pipe.bin")


def test_a_directory_is_not_a_media_file(site: Site) -> None:
    (site.root / "media" / "dir.bin").mkdir()
    with pytest.raises(MediaError, match="it is a directory"):
        MediaStore(site).read_bytes("media/dir.bin")


# -- symbolic links and removing empty directories -----------------------------------


def test_symlink_is_relative_inside_the_site_and_repeatable(site: Site) -> None:
    store = MediaStore(site)
    store.symlink("cases/one/media", "media")
    link = site.root / "cases/one/media"
    assert link.is_symlink() and os.readlink(link) == "../../media"
    assert (link / "a.bin").read_bytes() == b"original"
    assert _temps(site.root) == []
    assert store.log.changes == [MediaChange("symlink", "cases/one/media", source="../../media")]
    made = link.lstat().st_ino
    again = MediaStore(site)  # a resumed attempt: the same link is left alone, and logged
    again.symlink("cases/one/media", "media")
    assert link.lstat().st_ino == made and os.readlink(link) == "../../media"
    assert again.log.changes == store.log.changes
    (site.root / "other").mkdir()
    store.symlink("cases/one/media", "other")  # another target: replaced atomically
    assert os.readlink(link) == "../../other" and _temps(site.root) == []


def test_symlink_refuses_a_target_outside_the_site(site: Site, tmp_path: Path) -> None:
    store = MediaStore(site)
    with pytest.raises(SiteError):
        store.symlink("cases/x", "../outside")
    with pytest.raises(SiteError):
        store.symlink("cases/x", str(tmp_path))
    (tmp_path / "elsewhere").mkdir()
    (site.root / "escape").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(SiteError, match="outside the site"):
        store.symlink("cases/x", "escape")
    assert not (site.root / "cases").exists()


def test_symlink_does_not_replace_a_directory(site: Site) -> None:
    (site.root / "cases/x").mkdir(parents=True)
    with pytest.raises(MediaError, match="a directory is there"):
        MediaStore(site).symlink("cases/x", "media")
    assert (site.root / "cases/x").is_dir() and _temps(site.root) == []


def test_symlink_in_a_dry_run_is_planned_not_made(site: Site) -> None:
    before = snapshot(site.root)
    store = MediaStore(site, dry_run=True)
    store.symlink("cases/one/media", "media")
    assert store.exists("cases/one/media")
    assert store.listdir("cases/one") == ["media"]
    assert store.log.changes == [MediaChange("symlink", "cases/one/media", source="../../media")]
    assert snapshot(site.root) == before
    store.close()


def test_rmdir_empty_removes_only_empty_directories_and_repeats(site: Site) -> None:
    (site.root / "cache/a/b").mkdir(parents=True)
    store = MediaStore(site)
    assert store.rmdir_empty("media") is False  # not empty: left alone
    assert store.rmdir_empty("media/a.bin") is False  # not a directory
    assert store.rmdir_empty("cache/a") is False
    assert store.rmdir_empty("cache/a/b") is True
    assert store.rmdir_empty("cache/a") is True
    assert not (site.root / "cache/a").exists() and (site.root / "cache").is_dir()
    assert store.log.changes == [MediaChange("rmdir", "cache/a/b"), MediaChange("rmdir", "cache/a")]
    again = MediaStore(site)  # a resumed attempt: already gone, logged as its work
    assert again.rmdir_empty("cache/a") is True
    assert again.log.changes == [MediaChange("rmdir", "cache/a")]


def test_rmdir_empty_in_a_dry_run_sees_planned_removals(site: Site) -> None:
    (site.root / "cache/a").mkdir(parents=True)
    (site.root / "cache/a/f").write_bytes(b"x")
    before = snapshot(site.root)
    store = MediaStore(site, dry_run=True)
    assert store.rmdir_empty("cache/a") is False
    store.remove("cache/a/f")
    assert store.rmdir_empty("cache/a") is True
    assert not store.exists("cache/a") and store.listdir("cache") == []
    assert snapshot(site.root) == before
    store.close()


@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "plan"])
def test_rmdir_empty_leaves_a_link_to_an_empty_directory(site: Site, dry_run: bool) -> None:
    """A plan says what the run does: neither removes a link as if it were a directory."""
    (site.root / "empty").mkdir()
    (site.root / "media" / "link").symlink_to("../empty")
    store = MediaStore(site, dry_run=dry_run)
    assert store.rmdir_empty("media/link") is False
    assert store.exists("media/link") and store.log.changes == []
    store.close()
