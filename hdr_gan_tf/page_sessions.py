"""What the web page's browser sessions hold, and when it goes (`hdr_gan_tf.web_page`).

A session owns exactly two kinds of files, and the page removes nothing else:
- the **uploads it claimed**: regular files that the page's upload route itself wrote (recorded
  as they arrive, `received`), named by a session's event; a folder, a link, a file the route
  did not write or one in any other place is refused, never recorded;
- its **own folder** of merges, made by the page under a random name (the downloads are served
  from there, so the server keeps no copies of them elsewhere).

A session ends when its browser tab has been gone for `grace` seconds: the tab's heartbeat
connection closed and did not come back (a network blip, a laptop waking up, reconnects within
the grace and keeps everything), and no merge of it runs. Then its folder and the uploads no
other session claims are removed, file by file, and only then is the session forgotten, so
`active()` no longer listing it means its files are gone. A merge that finishes while its tab is
disconnected is kept, and the next click with the same photos and options shows it.

Uploads that no session claims (a tab closed right after uploading, a client posting to the
upload route alone) are removed `upload_ttl` seconds after they arrived, and while a client
(an address) has `max_pending_files` or `max_pending_bytes` of them, its next upload is
refused. `sweep` does the removing; `start` runs it every second in a thread.
"""

import contextlib
import os
import re
import secrets
import stat
import threading
import time
import typing
from pathlib import Path

# How long a session's files outlive its tab's last heartbeat connection (a reconnect within it
# keeps everything).
GRACE_S = 120.0
# How long an upload that no session claimed is kept.
UPLOAD_TTL_S = 600.0
# Unclaimed uploads allowed per client (address) at a time: a bracket's photos, twice over.
MAX_PENDING_FILES = 18


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
      root: the folder the sessions' folders go in (made by the page, removed with it).
      uploads: the folder the upload route writes to (Gradio's upload folder).
      grace: seconds a session outlives its tab's last connection.
      upload_ttl: seconds an unclaimed upload is kept.
      max_pending_files, max_pending_bytes: unclaimed uploads allowed per client at once.
      clock: the time in seconds (a seam for tests).
    """

    def __init__(self, root, uploads, grace=GRACE_S, upload_ttl=UPLOAD_TTL_S,
                 max_pending_files=MAX_PENDING_FILES, max_pending_bytes=2 ** 32,
                 clock=time.monotonic):
        self.root, self.uploads = Path(root), Path(uploads)
        self.grace, self.upload_ttl = float(grace), float(upload_ttl)
        self.max_pending_files, self.max_pending_bytes = max_pending_files, max_pending_bytes
        self.clock = clock
        self._received = {}  # upload path -> Received
        self._holders = {}  # upload path -> the sessions that claimed it
        self._claimed_at = {}  # upload path -> when a session last claimed it
        self._folders = {}  # session -> its folder
        self._connections = {}  # session -> open heartbeat connections
        self._working = {}  # session -> merges or renderings under way
        self._gone_since = {}  # session -> when its last connection closed (or it unloaded)
        self._dropped = {}  # session -> connections lost so far (a merge notices one)
        self._kept = {}  # session -> Kept
        self._count = 0
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread = None

    # ---------------------------------------------------------------- uploads
    def admit_upload(self, client, size):
        """Raises UploadRefused unless `client` may upload `size` more bytes now (its
        unclaimed uploads within the bounds)."""
        with self._lock:
            pending = [r for path, r in self._received.items()
                       if r.client == client and path not in self._holders]
        if len(pending) >= self.max_pending_files:
            raise UploadRefused(429, f"{len(pending)} uploads of this client are not used by any "
                                     f"page yet; wait for them to be merged or to expire")
        if sum(r.size for r in pending) + size > self.max_pending_bytes:
            raise UploadRefused(429, "this client's unused uploads would exceed "
                                     f"{self.max_pending_bytes:,} bytes; try again later")

    def received(self, client, paths):
        """Records the files the upload route wrote for `client` (its response's paths); only
        regular files directly in a folder of the upload folder count."""
        now = self.clock()
        with self._lock:
            for path in map(Path, paths):
                info = self._upload_stat(path)
                if info is not None:
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
        """The uploads `paths` (as an event of `session` named them), now held by `session`
        until it ends. ValueError naming the first one (by its file name) that is not a file
        the upload route wrote; nothing is claimed then."""
        paths = [Path(p) for p in paths]
        with self._lock:
            for path in paths:
                if path not in self._received or self._upload_stat(path) is None:
                    raise ValueError(f"{path.name or path}: not a photo uploaded to this page "
                                     f"(or it expired); upload it again")
            for path in paths:
                self._holders.setdefault(path, set()).add(session)
                self._claimed_at[path] = self.clock()
        return paths

    # ---------------------------------------------------------------- a session's folder
    def folder(self, session):
        """The session's own folder (a random name, made on first use)."""
        with self._lock:
            if session not in self._folders:
                self._folders[session] = self.root / secrets.token_urlsafe(18)
                self._folders[session].mkdir(parents=True)
            return self._folders[session]

    def next_merge(self, session):
        """A new, not yet existing folder for one merge of `session`."""
        with self._lock:
            self._count += 1
            return self.folder(session) / f"merge-{self._count}"

    # ---------------------------------------------------------------- life and end
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
            return (set(self._folders) | set(self._connections) | set(self._working)
                    | {s for holders in self._holders.values() for s in holders})

    # ---------------------------------------------------------------- removal
    def sweep(self):
        """Ends the sessions gone longer than the grace and removes the uploads unclaimed for
        longer than the TTL; returns the sessions ended."""
        now = self.clock()
        with self._lock:
            ended = [s for s, since in self._gone_since.items()
                     if now - since >= self.grace and not self._working.get(s)
                     and not self._connections.get(s)]
        for session in ended:
            self._clear(session)
        self._remove_expired_uploads(now)
        return ended

    def _clear(self, session):
        """Removes the session's folder and the uploads only it held, then forgets it."""
        with self._lock:
            folder = self._folders.get(session)
            gone = []
            for path, holders in list(self._holders.items()):
                holders.discard(session)
                if not holders:
                    del self._holders[path]
                    gone.append(path)
        if folder is not None:
            _remove_tree_we_made(folder)
        for path in gone:
            with self._lock:
                received = self._received.get(path)
                if path in self._holders or (
                        received and received.at > self._claimed_at.get(path, received.at)):
                    continue  # claimed or uploaded again meanwhile: it is another's now
                self._received.pop(path, None)
                self._claimed_at.pop(path, None)
                _remove_upload(path)
        with self._lock:
            for table in (self._folders, self._gone_since, self._dropped, self._kept):
                table.pop(session, None)

    def _remove_expired_uploads(self, now):
        """Unclaimed uploads older than the TTL, and anything else in the upload folder that
        no session holds and that has not changed for the TTL (Gradio's leftovers)."""
        with self._lock:
            expired = [p for p, r in self._received.items()
                       if p not in self._holders and now - r.at >= self.upload_ttl]
            for path in expired:
                del self._received[path]
            held = set(self._holders) | set(self._received)
        for path in expired:
            _remove_upload(path)
        wall_cutoff = time.time() - self.upload_ttl
        try:
            folders = list(os.scandir(self.uploads))
        except OSError:
            return
        for entry in folders:
            with contextlib.suppress(OSError):
                if entry.is_file(follow_symlinks=False):
                    # a file the upload parser left in the folder itself
                    if entry.stat(follow_symlinks=False).st_mtime < wall_cutoff:
                        os.unlink(entry.path)
                elif entry.is_dir(follow_symlinks=False):
                    for item in os.scandir(entry.path):
                        path = Path(item.path)
                        if (path not in held and item.is_file(follow_symlinks=False)
                                and item.stat(follow_symlinks=False).st_mtime < wall_cutoff):
                            os.unlink(item.path)
                    with contextlib.suppress(OSError):
                        os.rmdir(entry.path)  # only when empty

    # ---------------------------------------------------------------- the sweeper thread
    def start(self, every=1.0):
        """Runs `sweep` every `every` seconds in a thread until `stop`."""
        def loop():
            while not self._stop.wait(every):
                self.sweep()

        self._thread = threading.Thread(target=loop, name="page-sessions", daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def _remove_upload(path):
    """Removes one upload file and then its folder if that is empty (never a folder's
    contents)."""
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISREG(os.lstat(path).st_mode):
            os.unlink(path)
    with contextlib.suppress(OSError):
        os.rmdir(Path(path).parent)


def _remove_tree_we_made(folder):
    """Removes a session's folder, which only the page writes into: files and links are
    unlinked (a link's target is never touched), folders removed bottom-up."""
    for top, dirs, files in os.walk(folder, topdown=False):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(top, d))]:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(top, name))
        for name in dirs:
            with contextlib.suppress(OSError):
                os.rmdir(os.path.join(top, name))
    with contextlib.suppress(OSError):
        os.rmdir(folder)


# A Gradio route's path: `/gradio_api/upload`, `/gradio_api/heartbeat/<session>`.
_HEARTBEAT = re.compile(r"(?:.*/)?gradio_api/heartbeat/(?P<session>[^/]+)")
_UPLOAD = re.compile(r"(?:.*/)?gradio_api/upload")


class PageTraffic:
    """ASGI middleware between the server and Gradio's routes: tells `sessions` when a tab's
    heartbeat connection opens and closes, bounds each client's unclaimed uploads (an upload
    needs its Content-Length) and records the files the upload route wrote."""

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
        if _UPLOAD.fullmatch(path) and method == "POST":
            return await self._upload(scope, receive, send)
        return await self.app(scope, receive, send)

    async def _upload(self, scope, receive, send):
        import json

        client = (scope.get("client") or ("unknown",))[0]
        headers = dict(scope.get("headers") or [])
        try:
            size = int(headers.get(b"content-length", b"-1"))
            if size < 0:
                raise UploadRefused(411, "an upload must give its Content-Length")
            self.sessions.admit_upload(client, size)
        except (ValueError, UploadRefused) as err:
            status = getattr(err, "status", 400)
            return await _answer(send, status, str(err))
        answer = {"status": 0, "body": b""}

        async def recording_send(message):
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
            elif message["type"] == "http.response.body":
                answer["body"] += message.get("body", b"")
                if answer["status"] == 200 and not message.get("more_body"):
                    # recorded before the client can name them in an event
                    with contextlib.suppress(ValueError, TypeError):
                        paths = json.loads(answer["body"])
                        self.sessions.received(client, [p for p in paths
                                                         if isinstance(p, str)])
            await send(message)

        await self.app(scope, receive, recording_send)


async def _answer(send, status, text):
    body = text.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
