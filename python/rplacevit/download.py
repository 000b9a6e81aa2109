"""Downloading Reddit's official r/place data: every year and part, resumable, verified,
parallel, with progress.

Where the files are (the defaults; links move, so ``base_url`` and ``url_list`` override them):

- 2022: :data:`BASE_URLS` [2022] + ``2022_place_canvas_history-0000000000NN.csv.gzip``, NN =
  00..78 (79 parts, about 12 GB), or the one combined ``2022_place_canvas_history.csv.gzip``;
- 2023: :data:`BASE_URLS` [2023] + ``2023_place_canvas_history-0000000000NN.csv.gzip``, NN =
  00..52;
- 2017: ``place_tiles.csv`` (about 1 GB) from a Google storage mirror.

``DIR`` is a download folder by the output-folder rule (:mod:`rplacevit.outputs`): made and
marked by the first run, resumed into by the next; any other folder that is not empty is refused.
Each file is fetched into ``DIR/NAME.part`` and renamed to ``DIR/NAME`` only when it is
complete: its size is the announced one, and a gzip file decompresses to its end. The size is
the ``Content-Length`` of HEAD, else the one the URL list gives (``URL BYTES``), else the one the
manifest recorded; the transfer never reads past it (a longer body is refused and removed), and a
body that nothing bounds (no size anywhere) is refused. A ``.part`` is continued with an HTTP
``Range`` request; it starts over when the server ignores the range (200 instead of 206) or when
the remote file changed (its size, ``ETag`` or ``Last-Modified`` differ from what the ``.part``
was started with, kept in ``.NAME.part.json``). ``DIR/manifest.json`` records each complete file
(name, URL, bytes, sha256, when): a second run skips the files that are there and match it,
``verify=True`` checks every byte again, and a file there that it does not list is never
replaced. Connection errors, timeouts, 5xx answers and transfers slower than
:data:`STALL_FLOOR` are retried with exponential backoff; a 404 names the URL and suggests
another base URL. Ctrl-C and SIGTERM close every connection, so a transfer stops at once even
when the server stalls, and keep the ``.part`` files for the next run. Credentials in a URL
(``user:password@``) are sent, never written or shown.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import datetime
import hashlib
import json
import os
import shutil
import socket
import sys
import threading
import time
import unicodedata
import weakref
import zlib
from pathlib import Path
from typing import Callable

from . import outputs
from ._core import ArgumentError
from .store import DEFAULT_YEAR

#: Where each year's files are, by default.
BASE_URLS = {
    2017: "https://storage.googleapis.com/place_data_share/",
    2022: "https://placedata.reddit.com/data/canvas-history/",
    2023: "https://placedata.reddit.com/data/canvas-history/2023/",
}
#: How many numbered parts each year has (2017 is one file).
PART_COUNTS = {2022: 79, 2023: 53}
YEARS = tuple(BASE_URLS)

#: The 2017 mirror's single file, and 2022's combined file.
SINGLE_FILES = {2017: "place_tiles.csv"}
COMBINED_FILES = {2022: "2022_place_canvas_history.csv.gzip"}

MANIFEST = "manifest.json"
#: Bytes read and written at a time; a stop request is seen between two chunks.
CHUNK = 1 << 20
#: Seconds before a connection or a read without data gives up (and is retried).
TIMEOUT_S = 60.0
#: Bytes a second below which a transfer fails (and is retried), averaged over
#: :data:`STALL_WINDOW_S`: a server trickling a byte now and then never reaches the read timeout.
STALL_FLOOR = 1024
STALL_WINDOW_S = 60.0
#: The first retry waits this long, each next one twice as long.
BACKOFF_S = 1.0


class DownloadError(OSError):
    """A file could not be fetched or is not what the server announced; the message names the
    URL (and the HTTP status when there was one)."""


def part_name(year: int, part: int) -> str:
    """The official name of a numbered part: ``2022_place_canvas_history-000000000012.csv.gzip``."""
    return f"{year}_place_canvas_history-{part:012d}.csv.gzip"


def parse_parts(text: str, count: int) -> list[int]:
    """``all`` or a list like ``0-9,12`` → the sorted part numbers, each in 0..count−1."""
    if text == "all":
        return list(range(count))
    chosen: set[int] = set()
    for piece in text.split(","):
        try:
            first, _, last = piece.partition("-")
            low, high = int(first), int(last or first)
        except ValueError:
            raise ArgumentError(f"`parts` {text!r}: expected all, or numbers and ranges like 0-9,12") from None
        if not 0 <= low <= high < count:
            raise ArgumentError(f"`parts` {piece!r}: the parts are numbered 0..{count - 1}")
        chosen.update(range(low, high + 1))
    return sorted(chosen)


@dataclasses.dataclass(frozen=True)
class Remote:
    """One file to fetch: its name in the folder, its URL without credentials (what the manifest
    records and the messages show), the credentials the URL came with, and its size in bytes
    when the URL list gives it."""

    name: str
    url: str
    auth: tuple[str, str] | None = dataclasses.field(default=None, repr=False)
    size: int | None = None


def located(name: str, url: str, size: int | None = None) -> Remote:
    """The Remote ``name`` at ``url``, whose ``user:password@`` (if any) moves to ``auth``."""
    from urllib.parse import unquote, urlsplit, urlunsplit

    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at:
        return Remote(name, url, size=size)
    user, _, password = userinfo.partition(":")
    return Remote(name, urlunsplit(parts._replace(netloc=host)), (unquote(user), unquote(password)), size)


def listed(line: str, url_list) -> Remote:
    """The Remote of a URL list's line, ``URL`` or ``URL BYTES``; ArgumentError naming the URL
    (without its credentials) for any other line."""
    url, *rest = line.split(None, 1)
    size = rest[0].strip() if rest else ""
    if size and not (size.isascii() and size.isdigit() and len(size) <= 18):
        raise ArgumentError(f"`url_list` {os.fspath(url_list)}: {located('', url).url!r} is followed by {size!r}: expected its size "
                            "in bytes, or nothing")
    remote = located("", url, int(size) if size else None)
    return dataclasses.replace(remote, name=file_name(remote.url, url_list))


def plan(year: int = 2022, parts: str = "all", combined: bool = False, base_url: str | None = None,
         url_list: str | os.PathLike[str] | None = None) -> list[Remote]:
    """The files a download fetches (see the module docstring); ``url_list``: a text file of one
    URL per line (``#`` comments), each saved under the last part of its path, instead of all
    the rest; a line may give the file's size in bytes after its URL (``URL BYTES``), which
    bounds a server that announces none."""
    if url_list is not None:
        lines = [line.strip() for line in Path(url_list).read_text().splitlines()]
        remotes = [listed(line, url_list) for line in lines if line and not line.startswith("#")]
        if not remotes:
            raise ArgumentError(f"`url_list` {os.fspath(url_list)}: no URL in it")
        if len({remote.name for remote in remotes}) < len(remotes):
            raise ArgumentError(f"`url_list` {os.fspath(url_list)}: two URLs end in the same file name")
        return remotes
    if year not in YEARS:
        raise ArgumentError(f"`year` {year}: expected one of {', '.join(map(str, YEARS))}")
    base = base_url or BASE_URLS[year]
    base = base if base.endswith("/") else base + "/"
    if combined:
        if year not in COMBINED_FILES:
            raise ArgumentError(f"`combined`: {year} has no combined file")
        names = [COMBINED_FILES[year]]
    elif year in SINGLE_FILES:
        names = [SINGLE_FILES[year]]
    else:
        names = [part_name(year, part) for part in parse_parts(parts, PART_COUNTS[year])]
    return [located(name, base + name) for name in names]


def sha256_of(path: Path) -> tuple[int, str]:
    """(bytes, sha256) of a file, read in chunks."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def file_name(url: str, url_list) -> str:
    """The name a listed URL is saved under: the last segment of its path (no query),
    unquoted; ArgumentError for one that is empty, hidden, a path, the manifest's, or holds a
    control or format character (a newline, NUL, a right-to-left override: Unicode's C*)."""
    from urllib.parse import unquote, urlparse

    name = unquote(urlparse(url).path.rstrip("/").rsplit("/", 1)[-1])
    if (not name or name.startswith(".") or "/" in name or "\\" in name or name == MANIFEST or name.endswith(".part")
            or any(unicodedata.category(c).startswith("C") for c in name)):
        raise ArgumentError(f"`url_list` {os.fspath(url_list)}: {url!r} does not end in a usable file name")
    return name


#: What each manifest record holds, and its type.
RECORD = {"url": str, "bytes": int, "sha256": str, "when": str}


def read_manifest(folder: Path) -> dict[str, dict]:
    """name → record of the complete files of a download folder (none when there is no
    manifest); DownloadError for a manifest that is not one this module wrote."""
    path = folder / MANIFEST
    if not path.exists():
        return {}
    try:
        files = json.loads(path.read_text())["files"]
        good = isinstance(files, dict) and all(isinstance(name, str) and isinstance(record, dict) and
                                               all(isinstance(record.get(k), t) for k, t in RECORD.items())
                                               for name, record in files.items())
    except (ValueError, KeyError, TypeError, RecursionError):  # RecursionError: JSON nested deeper than Python recurses
        good = False
    if not good:
        raise DownloadError(f"{path}: not a download manifest (remove it to start over)")
    return files


def content_length(headers) -> int | None:
    """An answer's Content-Length; None when there is none, or no plain number of at most 18
    digits (one of thousands would stop int() with an error that names no URL)."""
    value = headers.get("content-length", "")
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 18 else None


def is_gzip(name: str) -> bool:
    return name.endswith((".gz", ".gzip"))


def check_file(path: Path, gzipped: bool | None = None) -> tuple[int, str]:
    """(bytes, sha256) of a file; DownloadError when a gzip file (``gzipped``, by default
    when the name ends in ``.gz``/``.gzip``) does not
    decompress to its end (every member, as gzip readers read multi-member files). The
    decompressed bytes are counted away in bounded pieces, never held."""
    digest = hashlib.sha256()
    size = 0
    gzipped = is_gzip(path.name) if gzipped is None else gzipped
    inflate, in_member = zlib.decompressobj(wbits=31), False
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            data = chunk if gzipped else b""
            while data:
                try:
                    inflate.decompress(data, 8 * CHUNK)
                except zlib.error as error:
                    raise DownloadError(f"{path}: corrupt gzip data ({error})") from None
                if inflate.eof:  # a member ended; what follows is the next one
                    data, inflate, in_member = inflate.unused_data, zlib.decompressobj(wbits=31), False
                else:
                    data, in_member = inflate.unconsumed_tail, True
    if gzipped and (size == 0 or in_member):
        raise DownloadError(f"{path}: the gzip stream ends early (truncated)")
    return size, digest.hexdigest()


class _Stop(Exception):
    """A transfer saw the stop request."""


class _Retry(Exception):
    """A transfer answered 5xx or 429: wait, then try again."""


class _Slow(_Retry):
    """A transfer brought less than :data:`STALL_FLOOR` over :data:`STALL_WINDOW_S`."""


class _TooLong(Exception):
    """The server sends more than the announced size."""


class Downloader:
    """Fetches :class:`Remote` files into a folder (see :func:`download`)."""

    def __init__(self, folder: Path, retries: int, stop: threading.Event, on_bytes: Callable[[int], None], client,
                 file_bars: bool = False):
        self.folder, self.retries, self.stop, self.on_bytes, self.client = folder, retries, stop, on_bytes, client
        self.manifest_lock = threading.Lock()
        # On a terminal, one line per active file below the overall bar, in the first free row.
        self.file_bars, self.rows, self.rows_lock = file_bars, set(), threading.Lock()
        # Every open connection's socket, for halt(); weak, so that a closed one is forgotten.
        self.sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self.sockets_lock = threading.Lock()

    def trace(self, event: str, info: dict) -> None:
        """httpcore's trace of each request (``extensions["trace"]``): keeps the socket of every
        new connection (and of its TLS layer, which takes the socket over), so that
        :meth:`halt` can close it; one opened after the halt is closed at once."""
        if event.endswith(("connect_tcp.complete", "start_tls.complete")):
            sock = info["return_value"].get_extra_info("socket")
            if sock is not None:
                with self.sockets_lock:
                    self.sockets.add(sock)
                    if self.stop.is_set():
                        shut_down(sock)

    def halt(self) -> None:
        """Sets the stop request and shuts every connection down: a transfer waiting for a server
        that stalls wakes at once with a connection error (then sees the stop) instead of after
        the read timeout."""
        self.stop.set()
        with self.sockets_lock:
            for sock in list(self.sockets):
                shut_down(sock)

    def send(self, method: str, remote: Remote, headers: dict | None = None, stream: bool = False):
        """The answer to ``method`` on ``remote``, following redirects, with its credentials and
        :meth:`trace`; DownloadError for a redirect loop (no retry mends one)."""
        import httpx

        request = self.client.build_request(method, remote.url, headers=headers, extensions={"trace": self.trace})
        try:
            return self.client.send(request, stream=stream, auth=remote.auth, follow_redirects=True)
        except httpx.TooManyRedirects:
            raise DownloadError(f"{remote.url}: too many redirects") from None

    def head(self, remote: Remote, recorded: int | None = None) -> dict:
        """The announced ``bytes`` (the Content-Length, else the size the URL list gives, else
        ``recorded``, the one in the manifest; None when none is known), ``etag`` and
        ``last_modified``; DownloadError when the Content-Length and the listed size differ."""
        response = self.attempts(remote, lambda: self.send("HEAD", remote))
        length = content_length(response.headers)
        if length is not None and remote.size is not None and length != remote.size:
            raise DownloadError(f"{remote.url}: the server announces {length:,} bytes, the URL list {remote.size:,}")
        known = next((size for size in (length, remote.size, recorded) if size is not None), None)
        return {"url": remote.url, "bytes": known, "etag": response.headers.get("etag"),
                "last_modified": response.headers.get("last-modified")}

    def pause(self, attempt: int, retry_after: str | None = None) -> None:
        """Waits before attempt ``attempt + 1``: the backoff, or what a 429/503's Retry-After
        asks (up to a minute); a stop request ends the wait at once."""
        delay = BACKOFF_S * 2 ** attempt
        if retry_after and retry_after.isdigit():
            delay = max(delay, min(float(retry_after), 60.0))
        if self.stop.wait(delay):
            raise _Stop()

    def attempts(self, remote: Remote, call):
        """``call()`` until it answers below 500, retrying connection errors, timeouts and 5xx
        with backoff; DownloadError after the last retry, or at once for a 4xx."""
        import httpx

        for attempt in range(self.retries + 1):
            if self.stop.is_set():
                raise _Stop()
            try:
                response = call()
            except httpx.TransportError as error:
                problem = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
            else:
                if response.status_code < 400:
                    return response
                if response.status_code == 404:
                    raise DownloadError(f"{remote.url}: HTTP 404 Not Found (the files may have moved: try --base-url URL or "
                                        "--url-list FILE)")
                if response.status_code < 500 and response.status_code != 429:
                    raise DownloadError(f"{remote.url}: HTTP {response.status_code} {response.reason_phrase}")
                problem = f"HTTP {response.status_code} {response.reason_phrase}"
            if attempt < self.retries:
                self.pause(attempt)
        raise DownloadError(f"{remote.url}: {problem}, after {self.retries + 1} attempts")

    def fetch(self, remote: Remote, announced: dict) -> dict:
        """Downloads one file into place and returns its manifest record."""
        target = self.folder / remote.name
        part = self.folder / (remote.name + ".part")
        meta = self.folder / f".{remote.name}.part.json"
        started = self.started_with(part) if part.exists() else None
        if started != announced:  # another file now, or never started: begin again
            part.unlink(missing_ok=True)
            meta.write_text(json.dumps(announced))
        size = announced["bytes"]
        with self.file_bar(remote.name, size) as on_bytes:
            self.transfer(remote, part, size, on_bytes)
        try:
            length, sha256 = check_file(part, is_gzip(remote.name))
        except DownloadError as error:
            self.forget(part)
            raise DownloadError(f"{remote.url}: {str(error).split(': ', 1)[1]}; the download was removed") from None
        if size is not None and length != size:
            raise DownloadError(f"{remote.url}: {length:,} bytes on disk, {size:,} announced")
        os.replace(part, target)
        record = {"url": remote.url, "bytes": length, "sha256": sha256,
                  "when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
        self.record(remote.name, record)
        # Only now: till the manifest lists the file, its .part.json says it is ours (see download).
        meta.unlink(missing_ok=True)
        return record

    def forget(self, part: Path) -> None:
        """Removes a ``.part`` that cannot be continued, and what it was started with."""
        part.unlink(missing_ok=True)
        part.with_name(f".{part.name.removesuffix('.part')}.part.json").unlink(missing_ok=True)

    def transfer(self, remote: Remote, part: Path, size: int | None, on_bytes: Callable[[int], None]) -> None:
        """Fetches ``remote`` into ``part`` until it holds ``size`` bytes (to the end of the body
        when the size is unknown and the answer gives its length), continuing what ``part``
        holds, with retries; never past ``size`` (DownloadError and the ``.part`` removed when
        the server sends more)."""
        import httpx

        for attempt in range(self.retries + 1):
            if self.stop.is_set():
                raise _Stop()
            have = part.stat().st_size if part.exists() else 0
            if size is not None and have > size:
                part.unlink()
                have = 0
            if size is not None and have == size:
                return
            # Bytes as stored (no transfer encoding, so offsets are file offsets); a resumed
            # range only if the file is still the one the .part began with (else a 200).
            headers = {"Accept-Encoding": "identity"}
            if have:
                headers["Range"] = f"bytes={have}-"
                validator = announced_validator(self.started_with(part))
                if validator:
                    headers["If-Range"] = validator
            retry_after, failure = None, None
            try:
                with contextlib.closing(self.send("GET", remote, headers, stream=True)) as response:
                    status = response.status_code
                    if status == 416:  # the .part is no prefix of the file: begin again
                        part.unlink(missing_ok=True)
                        raise _Retry()
                    self.check_status(remote, response, attempt)
                    if status >= 500 or status == 429:
                        retry_after = response.headers.get("retry-after")
                        raise _Retry()
                    if status not in (200, 206):
                        raise DownloadError(f"{remote.url}: HTTP {status} {response.reason_phrase}: expected the file")
                    if have and status == 200:  # the range was ignored, or the file changed: the whole file comes
                        have = 0
                    elif have:
                        expected = f"bytes {have}-{size - 1}/{size}" if size is not None else f"bytes {have}-"
                        got = response.headers.get("content-range", "")
                        if not got.startswith(expected):
                            raise DownloadError(f"{remote.url}: asked for bytes {have}- of {size if size is not None else '?'} "
                                                f"and got {got or 'no Content-Range'}")
                    length = content_length(response.headers)
                    if size is None and length is None:
                        self.forget(part)
                        raise DownloadError(f"{remote.url}: no size announced (no Content-Length), so nothing bounds the "
                                            "download: give its size after the URL in a --url-list file (URL BYTES)")
                    if size is not None and length is not None and have + length > size:
                        raise _TooLong()
                    self.receive(response, part, have, size, on_bytes)
                if size is None or part.stat().st_size == size:
                    return
            except _TooLong:
                self.forget(part)
                raise DownloadError(f"{remote.url}: the server sends more than the {size:,} bytes announced (what it sent was "
                                    "removed)") from None
            except (httpx.TransportError, _Retry) as error:
                failure = error
            if attempt < self.retries:
                self.pause(attempt, retry_after)
        if self.stop.is_set():  # the halt's closed connection, on the last attempt
            raise _Stop()
        got = part.stat().st_size if part.exists() else 0
        if size is None:
            raise DownloadError(f"{remote.url}: incomplete after {self.retries + 1} attempts")
        if isinstance(failure, _Slow):
            raise DownloadError(f"{remote.url}: slower than {STALL_FLOOR:,} bytes/s over {STALL_WINDOW_S:g} s, after "
                                f"{self.retries + 1} attempts ({got:,} of {size:,} bytes; the .part is kept: run again to continue)")
        raise DownloadError(f"{remote.url}: {got:,} of {size:,} bytes after {self.retries + 1} attempts (the .part is kept: "
                            "run again to continue)")

    def receive(self, response, part: Path, have: int, size: int | None, on_bytes: Callable[[int], None]) -> None:
        """Writes the body of ``response`` into ``part`` from byte ``have`` on: _Stop at a stop
        request, _TooLong past ``size``, _Slow when a window of :data:`STALL_WINDOW_S` brought
        less than :data:`STALL_FLOOR` a second."""
        room = None if size is None else size - have
        window_began, window_bytes = time.monotonic(), 0
        try:
            with open(part, "r+b" if have else "wb") as f:
                f.seek(have)
                f.truncate()
                for chunk in response.iter_raw():
                    if self.stop.is_set():
                        raise _Stop()
                    if room is not None:
                        if len(chunk) > room:
                            raise _TooLong()
                        room -= len(chunk)
                    f.write(chunk)
                    on_bytes(len(chunk))
                    window_bytes += len(chunk)
                    elapsed = time.monotonic() - window_began
                    if elapsed >= STALL_WINDOW_S:
                        if window_bytes < STALL_FLOOR * elapsed:
                            raise _Slow()
                        window_began, window_bytes = time.monotonic(), 0
                f.flush()
                os.fsync(f.fileno())
        except OSError as error:  # a full disk, most likely
            raise DownloadError(f"{part}: {error.strerror or error} (what was written is kept: make room, then run "
                                "again to continue)") from None

    @contextlib.contextmanager
    def file_bar(self, name: str, size: int | None):
        """A per-file bar while ``name`` transfers (only with ``file_bars``); yields the
        callback that counts its bytes (and the overall bar's)."""
        if not self.file_bars:
            yield self.on_bytes
            return
        from tqdm import tqdm

        with self.rows_lock:
            row = min(set(range(1, len(self.rows) + 2)) - self.rows)
            self.rows.add(row)
        bar = tqdm(total=size, initial=0, desc=name, unit="B", unit_scale=True, unit_divisor=1024, position=row, leave=False)

        def counted(n: int) -> None:
            self.on_bytes(n)
            bar.update(n)

        try:
            yield counted
        finally:
            bar.close()
            with self.rows_lock:
                self.rows.discard(row)

    def started_with(self, part: Path) -> dict:
        """What the remote file was when ``part`` began (its ``.part.json``; {} when unreadable)."""
        try:
            return json.loads(part.with_name(f".{part.name.removesuffix('.part')}.part.json").read_text())
        except (OSError, ValueError, RecursionError):
            return {}

    def check_status(self, remote: Remote, response, attempt: int) -> None:
        """DownloadError for a 4xx (404 with the hint); a 5xx or 429 on the last attempt too."""
        status = response.status_code
        if status == 404:
            raise DownloadError(f"{remote.url}: HTTP 404 Not Found (the files may have moved: try --base-url URL or --url-list FILE)")
        if 400 <= status < 500 and status not in (416, 429):
            raise DownloadError(f"{remote.url}: HTTP {status} {response.reason_phrase}")
        if (status >= 500 or status == 429) and attempt == self.retries:
            raise DownloadError(f"{remote.url}: HTTP {status} {response.reason_phrase}, after {self.retries + 1} attempts")

    def record(self, name: str, record: dict) -> None:
        """Adds a complete file to the manifest (written atomically)."""
        with self.manifest_lock:
            files = read_manifest(self.folder)
            files[name] = record
            temporary = self.folder / f".{MANIFEST}.partial-{os.getpid()}"
            temporary.write_text(json.dumps({"files": dict(sorted(files.items()))}, indent=2) + "\n")
            os.replace(temporary, self.folder / MANIFEST)


def download(out: str | os.PathLike[str], year: int = DEFAULT_YEAR, parts: str = "all", combined: bool = False, jobs: int = 4,
             base_url: str | None = None, url_list: str | os.PathLike[str] | None = None, retries: int = 5,
             verify: bool = False, progress: bool = True, timeout_s: float = TIMEOUT_S) -> dict:
    """Downloads the official files of ``year`` into folder ``out`` (see the module docstring);
    ``jobs`` files at once. Returns the summary: ``files`` (name → ``"downloaded"``,
    ``"complete"`` or ``"checked"``), ``bytes`` (fetched now) and ``seconds``. Raises
    DownloadError (an OSError) naming the URL for a file that cannot be fetched, and before any
    transfer when the disk cannot hold what is announced; OutputExistsError (a usage error) for a
    folder that is not a download's, or a file in it that no download wrote."""
    import httpx
    from filelock import FileLock, Timeout

    from .progress import bar

    for name, value, low in (("jobs", jobs, 1), ("retries", retries, 0)):
        if not (isinstance(value, int) and value >= low):
            raise ArgumentError(f"`{name}` = {value!r}: expected an integer >= {low}")
    remotes = plan(year, parts, combined, base_url, url_list)
    folder = outputs.create(out, "download", allowed=True)
    lock = FileLock(folder / ".download.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise DownloadError(f"{folder}: another download is writing this folder") from None
    stop = threading.Event()
    began = time.perf_counter()
    try:
        manifest = read_manifest(folder)
        refuse_others(folder, remotes, manifest)
        # The bar closes on an error too, so that its last line comes before the error's.
        with httpx.Client(timeout=httpx.Timeout(timeout_s)) as client, bar("download", "B", progress) as total:
            total.unit_scale, total.unit_divisor = True, 1024
            fetched = [0]
            counted = threading.Lock()

            def on_bytes(n: int) -> None:
                with counted:
                    fetched[0] += n
                    total.update(n)

            loader = Downloader(folder, retries, stop, on_bytes, client, file_bars=progress and sys.stderr.isatty())
            status: dict[str, str] = {}
            todo = []
            for remote in remotes:
                known, path = manifest.get(remote.name), folder / remote.name
                if known and known.get("url") == remote.url and path.exists() and path.stat().st_size == known.get("bytes"):
                    if not verify:
                        status[remote.name] = "complete"
                        continue
                    if intact(path, known):
                        status[remote.name] = "checked"
                        continue
                todo.append(remote)
            announced = {}
            for remote in todo:
                known = manifest.get(remote.name, {})
                announced[remote.name] = loader.head(remote, known["bytes"] if known.get("url") == remote.url else None)
            needed = sum(max(0, (a["bytes"] or 0) - partial_bytes(folder, name, a)) for name, a in announced.items())
            free = shutil.disk_usage(folder).free
            if needed > free:
                raise DownloadError(f"{folder}: the download needs {needed:,} bytes and the disk has {free:,} free")
            total.total = needed
            total.refresh()
            with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
                futures = {pool.submit(loader.fetch, remote, announced[remote.name]): remote for remote in todo}
                try:
                    for future in concurrent.futures.as_completed(futures):
                        future.result()
                        status[futures[future].name] = "downloaded"
                except BaseException:
                    loader.halt()  # every transfer stops at once, even one waiting on a stalled server; the .part files stay
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
    except _Stop:
        raise KeyboardInterrupt() from None
    finally:
        lock.release()
    return {"folder": str(folder), "files": {r.name: status[r.name] for r in remotes}, "bytes": fetched[0],
            "seconds": time.perf_counter() - began}


def refuse_others(folder: Path, remotes: list[Remote], manifest: dict[str, dict]) -> None:
    """OutputExistsError naming the file unless every file (and ``.part``) a download of
    ``remotes`` would replace in ``folder`` is one a download wrote: listed in the manifest, or
    begun (its ``.part.json``, kept till the manifest lists it)."""
    for remote in remotes:
        if remote.name in manifest or (folder / f".{remote.name}.part.json").exists():
            continue
        for path in (folder / remote.name, folder / (remote.name + ".part")):
            if os.path.lexists(path):
                raise outputs.OutputExistsError(f"{path}: not written by rplacevit download (not in {folder / MANIFEST}): refusing "
                                                "to replace it; move it away, or download into another folder")


def shut_down(sock: socket.socket) -> None:
    """Shuts a connection down both ways, which wakes a thread blocked reading it; one already
    closed is left alone."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def intact(path: Path, known: dict) -> bool:
    """Whether a file still has the size and sha256 its manifest record says (and, gzip,
    decompresses to its end)."""
    try:
        return check_file(path) == (known["bytes"], known["sha256"])
    except DownloadError:
        return False


def partial_bytes(folder: Path, name: str, announced: dict) -> int:
    """The bytes of ``name`` a resumed transfer keeps: its ``.part``, when it was started on the
    same remote file."""
    part, meta = folder / (name + ".part"), folder / f".{name}.part.json"
    try:
        return part.stat().st_size if json.loads(meta.read_text()) == announced else 0
    except (OSError, ValueError):
        return 0


def announced_validator(announced: dict) -> str | None:
    """The ``If-Range`` value of a remote file as announced: its strong ETag, else its
    Last-Modified date (None without either: the Content-Range check remains)."""
    etag = announced.get("etag")
    if etag and not etag.startswith("W/"):
        return etag
    return announced.get("last_modified")


def dataset_sources(dataset: Path) -> list[tuple[str, int]] | None:
    """(name, bytes) of the files a complete dataset was ingested from, by name; None when
    ``dataset`` holds no complete dataset."""
    import sqlite3

    from . import DatasetError
    from .store import info

    try:
        info(dataset)
    except DatasetError:
        return None
    with sqlite3.connect(f"file:{dataset / 'meta.sqlite'}?mode=ro", uri=True) as connection:
        return sorted(connection.execute("SELECT name, size FROM sources").fetchall())


#: How ``get`` ingests each year's files: the 2017 mirror has rows with an empty field and rows
#: off its 1000×1000 canvas, so its good rows are kept and the bad ones listed in rejects.csv.
GET_ON_ERROR = {2017: "skip"}


def get(dataset: str | os.PathLike[str], files: str | os.PathLike[str] | None = None, progress: bool = True, force: bool = False,
        **options) -> dict:
    """Download, ingest and verify in one: :func:`download` into ``files`` (default: the folder
    ``DATASET-files`` beside the dataset; ``options`` are download's), then
    :func:`rplacevit.ingest` of that folder into ``dataset`` — unless ``dataset`` already is
    the dataset of exactly those files, so every stage resumes where it stopped — then
    :func:`rplacevit.verify`. Returns ``download`` and ``ingest`` (None when kept) summaries and
    ``problems`` (none for an intact dataset). 2017's bad rows are skipped (:data:`GET_ON_ERROR`),
    every other year's stop the ingest."""
    from .store import ingest, verify

    dataset = Path(os.path.abspath(dataset))  # `-o .` names the folder it stands for
    # A folder that can never become the dataset is refused before hours of downloading; a
    # dataset there is kept when it is the one of the files, and replaced only with `force`.
    outputs.check(dataset, "dataset", True)
    files = Path(files) if files is not None else dataset.with_name(dataset.name + "-files")
    fetched = download(files, progress=progress, **options)
    wanted = sorted((name, (files / name).stat().st_size) for name in fetched["files"])
    ingested = None
    if dataset_sources(dataset) != wanted:
        on_error = GET_ON_ERROR.get(options.get("year", DEFAULT_YEAR), "fail")
        ingested = ingest([files / name for name, _ in wanted], dataset, force=force, progress=progress, on_error=on_error)
    return {"download": fetched, "ingest": ingested, "problems": verify(dataset, progress=progress)}
