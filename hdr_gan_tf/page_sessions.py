"""What the web page's browser sessions hold, and when it goes (`hdr_gan_tf.web_page`).

A session owns exactly two kinds of files, and the page removes nothing else:
- the **uploads it claimed**: regular files that the page's upload route itself wrote (recorded
  as they arrive, `received`), named by a session's event; a folder, a link, a file the route
  did not write or one in any other place is refused, never recorded;
- its **own folder** of merges, made by the page under a random name (the downloads are served
  from there, so the server keeps no copies of them elsewhere).

A session ends when it has been gone for `grace` seconds: its tab's heartbeat connection closed
and did not come back (a network blip, a laptop waking up, reconnects within the grace and
keeps everything), or, for a client that never opens one, since its last event; and no merge of
it runs. Then it is forgotten at once (a later event of the same tab starts afresh) and its
folder and the uploads no other session claims are removed, file by file, so `active()` no
longer listing it means its files are gone. A merge that finishes while its tab is disconnected
is kept, and the next click with the same photos and options shows it.

A session holds the uploads its latest event named (a tab's current photos; those it no longer
names go) and its last `KEPT_MERGES` merges. Uploads that no session claims (a tab closed right
after uploading, a client posting to the upload route alone) are removed `upload_ttl` seconds
after they arrived. A client (an address) may have at most `max_pending_files` and
`max_pending_bytes` of them, counting uploads under way by their length and refused ones by
what they sent, and keep at most `SESSION_SHARE` times as much in all its sessions: beyond, an
upload is answered 429 (and its files removed). `sweep` does the removing; `start` runs it
every second in a thread.
"""

import contextlib
import json
import logging
import os
import re
import secrets
import stat
import threading
import time
import typing
from pathlib import Path

# How long a session's files outlive its tab's last heartbeat connection (a reconnect within it
# keeps everything), or a client's last event where it never opened one.
GRACE_S = 120.0
# How long an upload that no session claimed is kept.
UPLOAD_TTL_S = 600.0
# Unclaimed uploads allowed per client (address) at a time: a bracket's photos, twice over.
MAX_PENDING_FILES = 18
# What one client may keep on the page in all its sessions, as a multiple of the unclaimed
# bounds.
SESSION_SHARE = 4
# Merges a session keeps: the newest and the one before it (older ones are no longer shown).
KEPT_MERGES = 2


class Received(typing.NamedTuple):
    """An upload as the upload route wrote it."""
    client: str  # the address it came from
    size: int
    at: float  # when (the sessions' clock)


class Kept(typing.NamedTuple):
    """A merge that finished while its tab was disconnected, kept for the next click."""
    key: tuple  # the photos and options it merged
    result: typing.Any


class UploadRefused(ValueError):
    """An upload the page does not take now: `status` is the HTTP status to answer with."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class Sessions:
    """The page's files by browser session (see the module docstring).

    Args:
      root: the folder the sessions' folders go in (made here, removed with the page's).
      uploads: the folder the upload route writes to (Gradio's upload folder).
      grace: seconds a session outlives its tab's last connection (or its last event).
      upload_ttl: seconds an unclaimed upload is kept.
      max_pending_files, max_pending_bytes: unclaimed uploads allowed per client at once.
      clock: the time in seconds (a seam for tests).
    """

    def __init__(self, root, uploads, grace=GRACE_S, upload_ttl=UPLOAD_TTL_S,
                 max_pending_files=MAX_PENDING_FILES, max_pending_bytes=2 ** 32,
                 clock=time.monotonic):
        self.root, self.uploads = Path(root), Path(uploads)
        self.root.mkdir(parents=True, exist_ok=True)
        self.grace, self.upload_ttl = float(grace), float(upload_ttl)
        self.max_pending_files, self.max_pending_bytes = max_pending_files, max_pending_bytes
        self.clock = clock
        self._received = {}  # upload path -> Received
        self._reserved = {}  # client -> bytes of uploads under way
        self._refused = []  # (client, bytes, when) of uploads the route refused
        self._holders = {}  # upload path -> the sessions that claimed it
        self._claimed_at = {}  # upload path -> when a session last claimed it
        self._folders = {}  # session -> its folder
        self._removing = {}  # session -> its folder, being removed (still active until gone)
        self._connections = {}  # session -> open heartbeat connections
        self._working = {}  # session -> merges or renderings under way
        self._gone_since = {}  # session -> since when it has had no connection
        self._dropped = {}  # session -> connections lost so far (a merge notices one)
        self._kept = {}  # session -> Kept
        self._merges = {}  # session -> its merge folders, oldest first
        self._count = 0
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread = None

    # ---------------------------------------------------------------- uploads
    def _pending(self, client):
        """`(count, bytes)` of `client`'s unclaimed uploads; those under way, and those the
        route refused within the TTL (it may have written some of their files), by their
        length."""
        pending = [r for path, r in self._received.items()
                   if r.client == client and path not in self._holders]
        refused = sum(size for who, size, _ in self._refused if who == client)
        return len(pending), (sum(r.size for r in pending) + self._reserved.get(client, 0)
                              + refused)

    def _held_by(self, client):
        """`(count, bytes)` of every upload of `client` still kept, claimed or not."""
        kept = [r for r in self._received.values() if r.client == client]
        return len(kept), sum(r.size for r in kept)

    def admit_upload(self, client, size):
        """Reserves `size` bytes for an upload of `client`, or raises UploadRefused when its
        unclaimed uploads, or all it keeps here in any number of sessions, are at their bounds.
        `received` (or `release`) ends the reservation."""
        with self._lock:
            count, pending = self._pending(client)
            if count >= self.max_pending_files:
                raise UploadRefused(429, f"{count} uploads of this client are not used by any "
                                         f"page yet; wait for them to be merged or to expire")
            if pending + size > self.max_pending_bytes:
                raise UploadRefused(429, "this client's unused uploads would exceed "
                                         f"{self.max_pending_bytes:,} bytes; try again later")
            kept, kept_bytes = self._held_by(client)
            if (kept >= SESSION_SHARE * self.max_pending_files
                    or kept_bytes + pending + size > SESSION_SHARE * self.max_pending_bytes):
                raise UploadRefused(429, "this client keeps too many uploads on the page; close "
                                         "some tabs (their uploads go after a grace)")
            self._reserved[client] = self._reserved.get(client, 0) + size

    def release(self, client, size, refused=0):
        """Ends a reservation of `admit_upload` of `size` bytes; `refused`: the bytes an upload
        the route refused had sent, which count for the TTL (whatever it wrote is removed as a
        stray by then)."""
        with self._lock:
            left = self._reserved.get(client, 0) - size
            if left > 0:
                self._reserved[client] = left
            else:
                self._reserved.pop(client, None)
            if refused:
                self._refused.append((client, refused, self.clock()))

    def received(self, client, paths):
        """Records the files the upload route wrote for `client` (its answer's paths): only
        regular files directly in a folder of the upload folder count. Raises UploadRefused,
        having removed them, when they would take the client beyond its bounds."""
        now = self.clock()
        with self._lock:
            found = {path: info for path, info in ((Path(p), self._upload_stat(p))
                                                   for p in paths) if info is not None}
            fresh = [p for p in found if p not in self._received]
            count, _ = self._pending(client)
            if count + len(fresh) > self.max_pending_files:
                for path in fresh:
                    _remove_upload(path)
                raise UploadRefused(429, f"{len(fresh)} files at once would take this "
                                         f"client's unused uploads beyond "
                                         f"{self.max_pending_files}")
            for path, info in found.items():
                self._received[path] = Received(client, info.st_size, now)

    def _upload_stat(self, path):
        """`lstat` of `path` if it is a regular file `<uploads>/<folder>/<name>` (no link, no
        `..`), else None."""
        path = Path(path)
        if not path.is_absolute() or ".." in path.parts or path.parent.parent != self.uploads:
            return None
        try:
            info = os.lstat(path)
            folder = os.lstat(path.parent)
        except OSError:
            return None
        if not stat.S_ISREG(info.st_mode) or not stat.S_ISDIR(folder.st_mode):
            return None
        return info

    def claim(self, session, paths):
        """The uploads `paths` (the whole list an event of `session` named), now held by
        `session` until it ends or names a list without them: an upload it no longer names and
        no other session holds is removed. ValueError naming the first one (by its file name)
        that is not a file the upload route wrote; nothing changes then."""
        paths = [Path(p) for p in paths]
        with self._lock:
            for path in paths:
                if path not in self._received or self._upload_stat(path) is None:
                    raise ValueError(f"{path.name or path}: not a photo uploaded to this page "
                                     f"(or it expired); upload it again")
            dropped = [p for p, holders in self._holders.items()
                       if session in holders and p not in paths]
            for path in paths:
                self._holders.setdefault(path, set()).add(session)
                self._claimed_at[path] = self.clock()
            for path in dropped:
                self._holders[path].discard(session)
                if not self._holders[path]:
                    del self._holders[path]
                    self._forget_upload(path)
            self._touch(session)
        return paths

    def _forget_upload(self, path):
        """Removes an upload no session holds (under the lock), unless it was uploaded again
        since it was last claimed: then it is pending again, for the TTL."""
        received = self._received.get(path)
        if received and received.at > self._claimed_at.get(path, received.at):
            return
        self._received.pop(path, None)
        self._claimed_at.pop(path, None)
        _remove_upload(path)

    # ---------------------------------------------------------------- a session's folder
    def folder(self, session):
        """The session's own folder (a random name, made on first use). ValueError once the
        page has stopped."""
        with self._lock:
            if self._stop.is_set():
                raise ValueError("the page is shutting down")
            if session not in self._folders:
                self._folders[session] = self.root / secrets.token_urlsafe(18)
                self._folders[session].mkdir()
                self._touch(session)
            return self._folders[session]

    def next_merge(self, session):
        """A new, not yet existing folder for one merge of `session`; of its earlier merges,
        all but the last `KEPT_MERGES - 1` are removed (their page shows the newest)."""
        with self._lock:
            self._count += 1
            folder = self.folder(session) / f"merge-{self._count}"
            merges = self._merges.setdefault(session, [])
            merges.append(folder)
            old, merges[:] = merges[:-KEPT_MERGES], merges[-KEPT_MERGES:]
        for merge in old:
            _remove_tree_we_made(merge)
        return folder

    # ---------------------------------------------------------------- life and end
    def _touch(self, session):
        """An event of `session`: without an open connection, its grace starts again now."""
        if not self._connections.get(session):
            self._gone_since[session] = self.clock()

    def connected(self, session):
        """A heartbeat connection of `session` opened (the tab is there)."""
        with self._lock:
            self._connections[session] = self._connections.get(session, 0) + 1
            self._gone_since.pop(session, None)

    def disconnected(self, session):
        """A heartbeat connection of `session` closed."""
        with self._lock:
            self._connections[session] = max(self._connections.get(session, 0) - 1, 0)
            self._dropped[session] = self._dropped.get(session, 0) + 1
            if not self._connections[session]:
                del self._connections[session]
                self._gone_since[session] = self.clock()

    def end(self, session):
        """The page says `session` ended (Gradio's unload): it goes after the grace unless its
        tab connects again."""
        with self._lock:
            if not self._connections.get(session):
                self._gone_since.setdefault(session, self.clock())

    @contextlib.contextmanager
    def working(self, session):
        """Around a merge or a rendering for `session`; yields a function telling whether the
        tab lost its connection meanwhile (its result would not reach it)."""
        with self._lock:
            self._working[session] = self._working.get(session, 0) + 1
            dropped = self._dropped.get(session, 0)
        try:
            yield lambda: self._dropped.get(session, 0) != dropped
        finally:
            with self._lock:
                self._working[session] -= 1
                if not self._working[session]:
                    del self._working[session]
                self._touch(session)

    def keep(self, session, key, result):
        """Keeps a merge whose tab was disconnected when it finished (`kept` returns it)."""
        with self._lock:
            self._kept[session] = Kept(key, result)

    def kept(self, session, key):
        """The kept merge of `session` for `key` (taken: shown once), or None."""
        with self._lock:
            kept = self._kept.get(session)
            if kept is None or kept.key != key:
                return None
            del self._kept[session]
            return kept.result

    def active(self):
        """The sessions that hold anything: a folder, uploads or a connection."""
        with self._lock:
            return (set(self._folders) | set(self._removing) | set(self._connections)
                    | set(self._working)
                    | {s for holders in self._holders.values() for s in holders})

    # ---------------------------------------------------------------- removal
    def sweep(self):
        """Ends the sessions gone longer than the grace and removes the uploads unclaimed for
        longer than the TTL; returns the sessions ended."""
        now = self.clock()
        with self._lock:
            ended = [s for s in self._gone_since if self._over(s, now)]
        ended = [s for s in ended if self._clear(s, now)]
        self._remove_expired_uploads(now)
        return ended

    def _over(self, session, now):
        since = self._gone_since.get(session)
        return (since is not None and now - since >= self.grace
                and not self._working.get(session) and not self._connections.get(session))

    def _clear(self, session, now):
        """Forgets `session` (if it is still over: it may have come back meanwhile), then
        removes its folder and the uploads only it held; whether it was ended."""
        with self._lock:
            if not self._over(session, now):
                return False
            folder = self._folders.pop(session, None)
            if folder is not None:
                self._removing[session] = folder
            gone = []
            for path, holders in list(self._holders.items()):
                holders.discard(session)
                if not holders:
                    del self._holders[path]
                    gone.append(path)
            for table in (self._gone_since, self._dropped, self._kept, self._merges):
                table.pop(session, None)
            for path in gone:
                self._forget_upload(path)
        if folder is not None:
            _remove_tree_we_made(folder)
            with self._lock:  # only now does `active` stop listing it: its files are gone
                self._removing.pop(session, None)
        return True

    def _remove_expired_uploads(self, now):
        """Unclaimed uploads older than the TTL, and anything else in the upload folder that
        no session holds and that has not changed for the TTL (Gradio's leftovers)."""
        with self._lock:
            expired = [p for p, r in self._received.items()
                       if p not in self._holders and now - r.at >= self.upload_ttl]
            for path in expired:
                del self._received[path]
                _remove_upload(path)
            self._refused = [r for r in self._refused if now - r[2] < self.upload_ttl]
        self.remove_strays(time.time() - self.upload_ttl)

    def remove_strays(self, before):
        """Removes what lies in the upload folder, modified before `before` (wall clock), that
        no session holds and the upload route did not record (Gradio's leftovers, the files of
        an upload it refused), and its folders left empty since then."""
        try:
            folders = list(os.scandir(self.uploads))
        except OSError:
            return
        for entry in folders:
            with contextlib.suppress(OSError):
                if entry.is_file(follow_symlinks=False) or entry.is_symlink():
                    if entry.stat(follow_symlinks=False).st_mtime < before:
                        os.unlink(entry.path)
                elif entry.is_dir(follow_symlinks=False):
                    for item in os.scandir(entry.path):
                        path = Path(item.path)
                        with self._lock:
                            known = path in self._holders or path in self._received
                            if (not known and not item.is_dir(follow_symlinks=False)
                                    and item.stat(follow_symlinks=False).st_mtime < before):
                                os.unlink(item.path)
                    if entry.stat(follow_symlinks=False).st_mtime < before:
                        os.rmdir(entry.path)  # only when empty

    # ---------------------------------------------------------------- the sweeper thread
    def start(self, every=1.0):
        """Runs `sweep` every `every` seconds in a thread until `stop`; an error of one sweep
        is logged and the next goes on."""
        def loop():
            while not self._stop.wait(every):
                try:
                    self.sweep()
                except Exception:  # noqa: BLE001 - the sweeper must outlive any one file
                    logging.getLogger(__name__).exception("removing a session's files failed")

        self._thread = threading.Thread(target=loop, name="page-sessions", daemon=True)
        self._thread.start()

    def stop(self):
        """Stops the sweeper; no session gets a folder from now on."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def _remove_upload(path):
    """Removes one upload file (its folder, named by its contents, stays a while: the route may
    be writing the same contents into it again; `remove_strays` removes it when empty)."""
    with contextlib.suppress(OSError):
        if stat.S_ISREG(os.lstat(path).st_mode):
            os.unlink(path)


def _remove_tree_we_made(folder):
    """Removes a session's folder, which only the page writes into: files and links are
    unlinked (a link's target is never touched), folders removed bottom-up."""
    for top, dirs, files in os.walk(folder, topdown=False):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(top, d))]:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(top, name))
        for name in dirs:
            with contextlib.suppress(OSError):
                os.rmdir(os.path.join(top, name))
    with contextlib.suppress(OSError):
        os.rmdir(folder)


# Gradio's routes under /gradio_api: the heartbeat, the upload route, and the only others the
# page's own calls post to; other posts (recordings, the vibe editor, the REST API) are refused.
_HEARTBEAT = re.compile(r"(?:.*/)?gradio_api/heartbeat/(?P<session>[^/]+)")
_UPLOAD = re.compile(r"(?:.*/)?gradio_api/upload/?")
_POSTS = re.compile(r"(?:.*/)?gradio_api/(?:upload|queue/join|cancel|reset)/?")


class PageTraffic:
    """ASGI middleware between the server and Gradio's routes: tells `sessions` when a tab's
    heartbeat connection opens and closes, bounds each client's unclaimed uploads (an upload
    must give its Content-Length and no Transfer-Encoding) and records the files the upload
    route wrote, and refuses writes to the routes the page does not use."""

    def __init__(self, app, sessions):
        self.app, self.sessions = app, sessions

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path, method = scope.get("path", ""), scope.get("method")
        beat = _HEARTBEAT.fullmatch(path)
        if beat and method == "GET":
            session = beat["session"]
            self.sessions.connected(session)
            try:
                return await self.app(scope, receive, send)
            finally:
                self.sessions.disconnected(session)
        if method not in ("GET", "HEAD", "OPTIONS") and not _POSTS.fullmatch(path):
            return await _answer(send, 403, "the page takes no such request")
        if _UPLOAD.fullmatch(path):
            return await self._upload(scope, receive, send)
        return await self.app(scope, receive, send)

    async def _upload(self, scope, receive, send):
        headers = dict(scope.get("headers") or [])
        # A forwarding header (which the server believes from a local peer) names whatever
        # address its sender likes: all such requests share one bound.
        client = ("forwarded" if b"x-forwarded-for" in headers
                  else (scope.get("client") or ("unknown",))[0])
        try:
            if b"transfer-encoding" in headers:
                raise UploadRefused(411, "an upload must give its Content-Length, not a "
                                         "Transfer-Encoding")
            size = int(headers.get(b"content-length", b"-1"))
            if size < 0:
                raise UploadRefused(411, "an upload must give its Content-Length")
            self.sessions.admit_upload(client, size)
        except ValueError as err:  # UploadRefused says its status; a bad length is 400
            return await _answer(send, getattr(err, "status", 400), str(err))
        # The answer is held back until the route is done, so that its files are recorded
        # (or refused and removed) before the client can name them.
        answer = {"start": None, "body": b"", "sent": 0}

        async def counting_receive():
            message = await receive()
            answer["sent"] += len(message.get("body", b""))
            return message

        async def holding_send(message):
            if message["type"] == "http.response.start":
                answer["start"] = message
            elif message["type"] == "http.response.body":
                answer["body"] += message.get("body", b"")

        try:
            await self.app(scope, counting_receive, holding_send)
        finally:
            start = answer["start"] or {"type": "http.response.start", "status": 500,
                                        "headers": []}
            self.sessions.release(client, size,
                                  refused=answer["sent"] if start["status"] != 200 else 0)
        if start["status"] == 200:
            try:
                paths = json.loads(answer["body"])
                self.sessions.received(client, [p for p in paths if isinstance(p, str)])
            except UploadRefused as err:
                return await _answer(send, err.status, str(err))
            except (ValueError, TypeError):
                pass
        await send(start)
        await send({"type": "http.response.body", "body": answer["body"]})


async def _answer(send, status, text):
    body = text.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
