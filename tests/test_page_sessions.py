import os

import pytest

from hdr_gan_tf.page_sessions import Sessions, UploadRefused


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture()
def page(tmp_path):
    """Sessions over a fresh upload folder, on a clock the test moves."""
    clock = Clock()
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    sessions = Sessions(tmp_path / "sessions", uploads, grace=10, upload_ttl=60,
                        max_pending_files=3, max_pending_bytes=100, clock=clock)
    return sessions, clock


def _upload(sessions, name, data=b"photo", client="1.2.3.4", folder=None):
    """A file as the upload route writes one (`<uploads>/<hash>/<name>`), recorded."""
    path = sessions.uploads / (folder or f"h{len(list(sessions.uploads.iterdir()))}") / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    sessions.received(client, [str(path)])
    return path


def test_only_files_the_upload_route_wrote_can_be_claimed(page, tmp_path):
    sessions, _ = page
    mine = _upload(sessions, "a.tif")
    other = _upload(sessions, "b.tif")
    sessions.claim("victim", [other])
    outside = tmp_path / "outside.tif"
    outside.write_bytes(b"x")
    link = sessions.uploads / "linked" / "c.tif"
    link.parent.mkdir()
    link.symlink_to(outside)
    sessions.received("1.2.3.4", [str(link)])
    unrecorded = sessions.uploads / "h9" / "d.tif"
    unrecorded.parent.mkdir()
    unrecorded.write_bytes(b"x")
    sneaky = sessions.uploads / other.parent.name / ".." / other.parent.name / other.name
    for path in (sessions.uploads, other.parent, sessions.uploads.parent, link, unrecorded,
                 outside, sneaky, sessions.folder("victim")):
        with pytest.raises(ValueError, match="not a photo uploaded to this page"):
            sessions.claim("attacker", [mine, path])
    assert "attacker" not in sessions.active()  # a refused claim holds nothing
    sessions.claim("attacker", [mine])
    sessions.end("attacker")
    clock_after(page, 11)
    assert sessions.sweep() == ["attacker"]
    assert not mine.exists() and not mine.parent.exists()
    assert other.is_file() and outside.is_file() and link.is_symlink()
    assert sessions.folder("victim").is_dir()


def clock_after(page, seconds):
    page[1].now += seconds


def test_a_session_goes_after_its_grace_unless_it_reconnects_or_works(page):
    sessions, _ = page
    photo = _upload(sessions, "a.tif")
    sessions.claim("tab", [photo])
    merge = sessions.next_merge("tab")
    merge.mkdir()
    (merge / "merged.hdr").write_bytes(b"hdr")
    sessions.connected("tab")
    sessions.disconnected("tab")  # a network blip...
    clock_after(page, 5)
    sessions.connected("tab")  # ...and back within the grace
    clock_after(page, 100)
    assert sessions.sweep() == [] and photo.is_file() and merge.is_dir()

    sessions.disconnected("tab")  # the tab closed, while a merge of it runs
    sessions.end("tab")
    with sessions.working("tab") as disconnected:
        clock_after(page, 100)
        assert sessions.sweep() == [] and photo.is_file()
        assert disconnected() is False  # the merge began after the drop
    assert sessions.sweep() == ["tab"]
    assert not photo.exists() and not merge.exists() and sessions.active() == set()


def test_a_merge_that_finished_while_its_tab_was_away_is_kept_for_the_same_click(page):
    sessions, _ = page
    sessions.connected("tab")
    with sessions.working("tab") as disconnected:
        sessions.disconnected("tab")
        sessions.connected("tab")
        assert disconnected()
        sessions.keep("tab", ("a", 1), "result")
    assert sessions.kept("tab", ("b", 1)) is None
    assert sessions.kept("tab", ("a", 1)) == "result"
    assert sessions.kept("tab", ("a", 1)) is None  # shown once


def test_an_upload_two_sessions_claim_goes_with_the_last(page):
    sessions, _ = page
    photo = _upload(sessions, "a.tif")
    for tab in ("a", "b"):
        sessions.claim(tab, [photo])
        sessions.end(tab)
        clock_after(page, 5)
    clock_after(page, 1)
    assert sessions.sweep() == ["a"] and photo.is_file()
    clock_after(page, 5)
    assert sessions.sweep() == ["b"] and not photo.exists()


def test_unclaimed_uploads_are_bounded_per_client_and_expire(page):
    sessions, _ = page
    first = _upload(sessions, "1.tif", b"x" * 40)
    sessions.admit_upload("1.2.3.4", 50)
    with pytest.raises(UploadRefused) as refused:
        sessions.admit_upload("1.2.3.4", 70)  # 40 + 70 bytes > 100
    assert refused.value.status == 429
    sessions.admit_upload("5.6.7.8", 70)  # another client's own bound
    _upload(sessions, "2.tif")
    _upload(sessions, "3.tif")
    with pytest.raises(UploadRefused, match="3 uploads of this client"):
        sessions.admit_upload("1.2.3.4", 1)
    sessions.claim("tab", [first])  # a claimed upload is no longer pending
    sessions.admit_upload("1.2.3.4", 1)

    stray = sessions.uploads / "tmpabc"  # what Gradio's parser may leave behind
    stray.write_bytes(b"")
    os.utime(stray, (0, 0))
    clock_after(page, 61)
    sessions.sweep()
    assert [p.name for p in sessions.uploads.rglob("*") if p.is_file()] == ["1.tif"]
    sessions.admit_upload("1.2.3.4", 60)


def test_a_session_folder_is_removed_without_following_links(page, tmp_path):
    sessions, _ = page
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("mine")
    merge = sessions.next_merge("tab")
    merge.mkdir()
    (merge / "to_folder").symlink_to(precious)
    (merge / "to_file").symlink_to(precious / "notes.txt")
    sessions.end("tab")
    clock_after(page, 10)
    assert sessions.sweep() == ["tab"]
    assert (precious / "notes.txt").read_text() == "mine"
    assert not sessions.root.exists() or not any(sessions.root.iterdir())
