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
    sessions.connected("victim")
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
    assert not mine.exists()
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
    clock_after(page, 9)  # the merge's end starts the grace again: a reconnect may yet come
    assert sessions.sweep() == [] and merge.is_dir()
    clock_after(page, 1)
    assert sessions.sweep() == ["tab"]
    assert not photo.exists() and not merge.exists() and sessions.active() == set()


def test_a_session_stays_active_until_its_files_are_removed(page, monkeypatch):
    """`active()` no longer listing a session means its files are gone (what a client waiting
    for its end may rely on), even while another thread sweeps."""
    from hdr_gan_tf import page_sessions

    sessions, _ = page
    with sessions.working("script"):
        (sessions.next_merge("script")).mkdir()
    seen = []
    remove = page_sessions._remove_tree_we_made

    def watched(folder):
        seen.append("script" in sessions.active())  # asked while the files are still there
        remove(folder)

    monkeypatch.setattr(page_sessions, "_remove_tree_we_made", watched)
    clock_after(page, 10)
    assert sessions.sweep() == ["script"]
    assert seen == [True] and sessions.active() == set()
    assert not any(sessions.root.iterdir())


def test_a_client_that_never_connects_ends_a_grace_after_its_last_event(page):
    sessions, _ = page
    photo = _upload(sessions, "a.tif")
    sessions.claim("script", [photo])
    clock_after(page, 6)
    with sessions.working("script"):
        sessions.next_merge("script").mkdir()
    clock_after(page, 9)
    assert sessions.sweep() == [] and photo.is_file()
    clock_after(page, 1)
    assert sessions.sweep() == ["script"] and not photo.exists()
    assert sessions.active() == set()


def test_a_session_that_comes_back_during_its_removal_starts_afresh(page, monkeypatch):
    """The sweep decides and forgets under one lock: a tab whose end is being carried out gets
    a new folder, and nothing of what it does then is removed."""
    import hdr_gan_tf.page_sessions as page_sessions

    sessions, _ = page
    old = sessions.next_merge("tab")
    old.mkdir()
    sessions.end("tab")
    clock_after(page, 10)
    removing = page_sessions._remove_tree_we_made
    new = {}

    def tab_returns_meanwhile(folder):
        sessions.connected("tab")
        new["photo"] = _upload(sessions, "a.tif")
        sessions.claim("tab", [new["photo"]])
        new["merge"] = sessions.next_merge("tab")
        new["merge"].mkdir()
        removing(folder)

    monkeypatch.setattr(page_sessions, "_remove_tree_we_made", tab_returns_meanwhile)
    assert sessions.sweep() == ["tab"]
    assert not old.exists() and new["merge"].is_dir() and new["photo"].is_file()
    assert new["merge"].parent != old.parent and "tab" in sessions.active()


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
    sessions.admit_upload("1.2.3.4", 50)  # an upload under way holds its length...
    with pytest.raises(UploadRefused) as refused:
        sessions.admit_upload("1.2.3.4", 20)  # ...so a second at once is refused: 40+50+20
    assert refused.value.status == 429
    sessions.release("1.2.3.4", 50)
    sessions.admit_upload("1.2.3.4", 20)
    sessions.release("1.2.3.4", 20, refused=20)  # the route refused it: what it sent counts
    with pytest.raises(UploadRefused):
        sessions.admit_upload("1.2.3.4", 50)
    sessions.admit_upload("5.6.7.8", 70)  # another client's own bound
    _upload(sessions, "2.tif")
    two = [sessions.uploads / name / name for name in ("3.tif", "4.tif")]  # one request's
    for path in two:
        path.parent.mkdir()
        path.write_bytes(b"x")
    with pytest.raises(UploadRefused, match="2 files at once"):
        sessions.received("1.2.3.4", [str(p) for p in two])
    assert not any(p.exists() for p in two)  # removed as they were refused
    _upload(sessions, "3.tif")
    with pytest.raises(UploadRefused, match="3 uploads of this client"):
        sessions.admit_upload("1.2.3.4", 1)
    sessions.connected("tab")
    sessions.claim("tab", [first])  # a claimed upload is no longer pending
    sessions.admit_upload("1.2.3.4", 1)
    sessions.release("1.2.3.4", 1)

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


def test_a_tab_holds_its_current_photos_and_its_last_merges(page):
    sessions, _ = page
    sessions.connected("tab")
    first = [_upload(sessions, f"{n}.tif") for n in range(3)]
    sessions.claim("tab", first)
    second = [first[0], _upload(sessions, "new.tif")]
    sessions.claim("tab", second)  # the photos it shows now: the others go
    assert first[0].is_file() and not first[1].exists() and not first[2].exists()
    merges = []
    for _ in range(4):
        merges.append(sessions.next_merge("tab"))
        merges[-1].mkdir()
    assert [m.is_dir() for m in merges] == [False, False, True, True]


def test_one_client_keeps_a_bounded_amount_in_any_number_of_sessions(page):
    sessions, _ = page  # 3 files and 100 bytes pending, four times that kept
    for n in range(12):
        sessions.connected(f"tab{n}")
        sessions.admit_upload("1.2.3.4", 5)
        sessions.release("1.2.3.4", 5)
        sessions.claim(f"tab{n}", [_upload(sessions, f"{n}.tif", b"x" * 5)])
    with pytest.raises(UploadRefused, match="keeps too many uploads"):
        sessions.admit_upload("1.2.3.4", 5)
    sessions.admit_upload("5.6.7.8", 5)  # another address is not held back
    sessions.release("5.6.7.8", 5)
    sessions.release("1.2.3.4", 0, refused=0)
    sessions.disconnected("tab0")
    clock_after(page, 10)
    sessions.sweep()  # tab0's end frees room
    sessions.admit_upload("1.2.3.4", 5)
