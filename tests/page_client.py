"""A client of the web page over raw HTTP, as a script (or a hostile user) drives it: uploads,
events with any file paths, and a tab's heartbeat connection opened and dropped at will."""

import http.client
import json
import urllib.error
import urllib.request
import uuid
from pathlib import Path


def file_data(path):
    """A file as an event's argument names it (any path: the page must check it)."""
    return {"path": str(path), "orig_name": Path(path).name,
            "meta": {"_type": "gradio.FileData"}}


class PageClient:
    """One browser tab of the page on `127.0.0.1:port` (its own session)."""

    def __init__(self, port):
        self.port, self.base = port, f"http://127.0.0.1:{port}"
        self.session = uuid.uuid4().hex[:11]
        with urllib.request.urlopen(self.base + "/config", timeout=30) as response:
            self.config = json.loads(response.read())
        self._heartbeat = None

    def upload(self, files, headers=None):
        """Posts `[(name, bytes)]` to the upload route: `(status, paths or the error text)`."""
        boundary = "hdr-gan-" + uuid.uuid4().hex
        body = b"".join(
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}"
            f"\"\r\nContent-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n"
            for name, data in files) + f"--{boundary}--\r\n".encode()
        request = urllib.request.Request(
            self.base + "/gradio_api/upload", data=body,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}",
                     **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    def connect(self):
        """Opens the tab's heartbeat connection (what keeps a session alive)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        connection.request("GET", f"/gradio_api/heartbeat/{self.session}")
        connection.getresponse()
        self._heartbeat = connection

    def disconnect(self):
        """Drops the heartbeat connection, as a closed tab or a network blip does."""
        if self._heartbeat is not None:
            if self._heartbeat.sock is not None:
                self._heartbeat.sock.close()
            self._heartbeat.close()
            self._heartbeat = None

    def call(self, name, data, timeout=300):
        """Runs the page's event `name` with `data` (its inputs); returns the message that
        completed it (`output` holds `data` or `error`)."""
        index = next(d["id"] for d in self.config["dependencies"] if d.get("api_name") == name)
        body = json.dumps({"data": data, "fn_index": index, "session_hash": self.session,
                           "event_data": None, "trigger_id": None}).encode()
        join = urllib.request.Request(self.base + "/gradio_api/queue/join", data=body,
                                      headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(join, timeout=30) as response:
            event = json.loads(response.read())["event_id"]
        stream = f"{self.base}/gradio_api/queue/data?session_hash={self.session}"
        with urllib.request.urlopen(stream, timeout=timeout) as response:
            for line in response:
                if line.startswith(b"data:"):
                    message = json.loads(line[5:])
                    if message.get("msg") == "process_completed" and (
                            message.get("event_id") == event):
                        return message
        raise AssertionError(f"the event {name} never completed")
