"""rplacevit download against a server on 127.0.0.1 that serves official-named parts made from
the shipped sample, and misbehaves on demand: drops a connection midway, ignores Range,
answers 404 or 503, sends fewer or more bytes than it announces (or an endless body), announces
no size, redirects in a loop, stalls or trickles, serves a corrupt gzip."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import json
import re
import threading
import time

import pytest

import rplacevit
from conftest import DATA
from rplacevit import download as dl
from rplacevit import outputs
from rplacevit.cli import main

#: What the misbehaving bodies add after the file (``longer``, ``endless``): enough to see that
#: the download stops at the announced size, little enough to send in a moment.
EXTRA = 8 << 20


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.files: dict[str, bytes] = {}
        self.faults: dict[str, list[str]] = {}  # name → faults, the first used (and removed) per GET
        self.requests: list[tuple[str, str, str | None]] = []  # method, name, Range
        self.authorizations: list[str | None] = []  # the Authorization header of each request
        self.no_length: set[str] = set()  # names announced without Content-Length and sent chunked
        self.loops: set[str] = set()  # names whose HEAD and GET redirect to themselves
        self.closing = threading.Event()  # ends the handlers that stall

    def handle_error(self, request, client_address):
        pass  # a client that hung up (the tests make some do) is no news

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/data/"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self.answer(body=False)

    def do_GET(self):
        self.answer(body=True)

    def answer(self, body: bool):
        server: Server = self.server
        name = self.path.rsplit("/", 1)[-1]
        server.requests.append((self.command, name, self.headers.get("Range")))
        server.authorizations.append(self.headers.get("Authorization"))
        data = server.files.get(name)
        if data is None:
            self.send_error(404)
            return
        faults = server.faults.get(name, [])
        fault = faults.pop(0) if body and faults else None
        if fault in ("503", "429"):
            self.send_response(int(fault))
            self.send_header("Retry-After", "0")
            self.send_header("Content-Length", "9")
            self.end_headers()
            self.wfile.write(b"slow down")  # an error page: never part of the file
            return
        if name in server.loops or fault == "redirect":
            self.send_response(302)
            self.send_header("Location", self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if fault == "stall":  # not even an answer
            server.closing.wait(60)
            return
        start = 0
        ranged = self.headers.get("Range")
        if ranged and fault != "ignore-range":
            start = int(re.fullmatch(r"bytes=(\d+)-", ranged).group(1))
        payload = data[start:]
        chunked = name in server.no_length or fault == "endless"
        self.send_response(206 if start else 200)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(len(payload) + (EXTRA if fault == "longer" else 0)))
        self.send_header("ETag", '"' + hashlib.md5(data).hexdigest() + '"')
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if not body:
            return
        try:
            self.send_body(payload, fault, chunked)
        except OSError:
            pass  # the client hung up

    def send_body(self, payload: bytes, fault: str | None, chunked: bool):
        server: Server = self.server
        if fault == "slow":  # 64 kB every 50 ms: seconds for a part
            for at in range(0, len(payload), 1 << 16):
                self.wfile.write(payload[at:at + (1 << 16)])
                self.wfile.flush()
                time.sleep(0.05)
            return
        if fault in ("drop", "short"):  # half the body, then the connection closes
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        if fault == "stall-body":  # half the body, then nothing
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            server.closing.wait(60)
            return
        if fault == "trickle":  # 20 bytes a second, for 20 s at most
            until = time.monotonic() + 20
            for at in range(len(payload)):
                if time.monotonic() > until or server.closing.is_set():
                    self.close_connection = True
                    return
                self.wfile.write(payload[at:at + 1])
                self.wfile.flush()
                time.sleep(0.05)
            return
        extra = EXTRA if fault in ("longer", "endless") else 0
        if not chunked:
            self.wfile.write(payload + bytes(extra))
            return
        for piece in (payload, *[bytes(1 << 16)] * (extra >> 16)):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        self.wfile.write(b"0\r\n\r\n")


@pytest.fixture()
def server():
    server = Server()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.closing.set()
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def parts() -> dict[str, bytes]:
    """The sample as three official-named 2022 parts (rows split in thirds, each gzip)."""
    lines = gzip.decompress(rplacevit.SAMPLE_CSV.read_bytes()).splitlines(keepends=True)
    header, rows = lines[0], lines[1:]
    third = len(rows) // 3 + 1
    return {dl.part_name(2022, k): gzip.compress(header + b"".join(rows[k * third:(k + 1) * third]), mtime=0) for k in range(3)}


def fetch(server, out, *extra, parts="0-2") -> int:
    return main(["download", "--year", "2022", "--parts", parts, "-o", str(out), "--base-url", server.url, "--quiet", *extra])


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    monkeypatch.setattr(dl, "BACKOFF_S", 0.0)


def test_a_download_equals_the_served_files_and_a_second_run_fetches_nothing(server, parts, tmp_path, capsys):
    server.files.update(parts)
    assert fetch(server, tmp_path) == 0
    for name, data in parts.items():
        assert (tmp_path / name).read_bytes() == data
    manifest = json.loads((tmp_path / "manifest.json").read_text())["files"]
    assert {name: record["sha256"] for name, record in manifest.items()} == {n: hashlib.sha256(d).hexdigest() for n, d in parts.items()}
    assert "3 file(s)" in capsys.readouterr().out and not list(tmp_path.glob("*.part"))
    gets = len([r for r in server.requests if r[0] == "GET"])
    assert fetch(server, tmp_path) == 0
    assert len([r for r in server.requests if r[0] == "GET"]) == gets
    assert "3 complete" in capsys.readouterr().out
    # --verify reads everything again; a damaged file is fetched anew.
    damaged = tmp_path / dl.part_name(2022, 1)
    damaged.write_bytes(b"x" * len(parts[damaged.name]))
    assert fetch(server, tmp_path, "--verify") == 0
    assert damaged.read_bytes() == parts[damaged.name]
    assert "1 downloaded, 2 checked" in capsys.readouterr().out


def test_a_dropped_connection_resumes_with_a_range_request(server, parts, tmp_path):
    server.files.update(parts)
    name = dl.part_name(2022, 0)
    server.faults[name] = ["drop"]
    assert fetch(server, tmp_path, parts="0") == 0
    assert (tmp_path / name).read_bytes() == parts[name]
    ranges = [r[2] for r in server.requests if r[0] == "GET" and r[1] == name]
    assert ranges[0] is None and re.fullmatch(r"bytes=\d+-", ranges[1]) and int(ranges[1][6:-1]) > 0


def test_a_server_ignoring_range_restarts_the_file_cleanly(server, parts, tmp_path):
    server.files.update(parts)
    name = dl.part_name(2022, 0)
    server.faults[name] = ["drop", "ignore-range"]
    assert fetch(server, tmp_path, parts="0") == 0
    assert (tmp_path / name).read_bytes() == parts[name]


def test_a_changed_remote_file_restarts_the_partial(server, parts, tmp_path):
    name = dl.part_name(2022, 0)
    server.files[name] = parts[name]
    server.faults[name] = ["drop"]
    assert fetch(server, tmp_path, "--retries", "0", parts="0") == 1  # half of it stays as .part
    assert (tmp_path / (name + ".part")).exists()
    server.files[name] = parts[dl.part_name(2022, 1)]  # the file changed on the server
    assert fetch(server, tmp_path, parts="0") == 0
    assert (tmp_path / name).read_bytes() == parts[dl.part_name(2022, 1)]
    assert [r[2] for r in server.requests if r[0] == "GET"][-1] is None  # started over, no Range


def test_retries_on_503_and_429_then_success(server, parts, tmp_path):
    name = dl.part_name(2022, 2)
    server.files[name] = parts[name]
    server.faults[name] = ["503", "429", "drop", "429"]
    assert fetch(server, tmp_path, parts="2") == 0
    assert (tmp_path / name).read_bytes() == parts[name]


def test_the_errors_name_the_url(server, parts, tmp_path, capsys):
    server.files.update(parts)
    url = server.url + dl.part_name(2022, 5)
    assert fetch(server, tmp_path, parts="5") == 1
    assert capsys.readouterr().err.strip() == (f"rplacevit: error: {url}: HTTP 404 Not Found (the files may have moved: "
                                               "try --base-url URL or --url-list FILE)")
    name = dl.part_name(2022, 0)
    server.faults[name] = ["503"] * 3
    assert fetch(server, tmp_path, "--retries", "2", parts="0") == 1
    assert capsys.readouterr().err.strip() == f"rplacevit: error: {server.url + name}: HTTP 503 Service Unavailable, after 3 attempts"
    server.faults[name] = ["429"] * 3
    assert fetch(server, tmp_path, "--retries", "2", parts="0") == 1
    assert capsys.readouterr().err.strip() == f"rplacevit: error: {server.url + name}: HTTP 429 Too Many Requests, after 3 attempts"
    server.faults[name] = ["short"] * 2
    assert fetch(server, tmp_path, "--retries", "1", parts="0") == 1
    err = capsys.readouterr().err.strip()
    assert re.fullmatch(rf"rplacevit: error: {re.escape(server.url + name)}: [\d,]+ of {len(parts[name]):,} bytes after 2 attempts "
                        r"\(the \.part is kept: run again to continue\)", err), err
    assert not (tmp_path / name).exists()
    assert fetch(server, tmp_path, parts="0") == 0  # and the next run continues it
    assert (tmp_path / name).read_bytes() == parts[name]


def test_a_corrupt_gzip_is_never_renamed_into_place(server, parts, tmp_path, capsys):
    name = dl.part_name(2022, 1)
    broken = bytearray(parts[name])
    broken[len(broken) // 2: len(broken) // 2 + 64] = bytes(64)
    server.files[name] = bytes(broken)
    assert fetch(server, tmp_path, parts="1") == 1
    err = capsys.readouterr().err
    assert f"{server.url + name}: corrupt gzip data" in err and "the download was removed" in err
    assert list(tmp_path.glob("*.csv.gzip*")) == []


def test_the_disk_must_hold_what_is_announced(server, parts, tmp_path, capsys, monkeypatch):
    server.files.update(parts)

    class Usage:
        free = 1000

    monkeypatch.setattr(dl.shutil, "disk_usage", lambda path: Usage)
    assert fetch(server, tmp_path) == 1
    need = sum(len(d) for d in parts.values())
    assert f"the download needs {need:,} bytes and the disk has 1,000 free" in capsys.readouterr().err
    assert [r for r in server.requests if r[0] == "GET"] == []


def test_parts_and_plans():
    assert dl.parse_parts("0-2,5,4", 79) == [0, 1, 2, 4, 5]
    assert len(dl.parse_parts("all", 53)) == 53
    for bad in ("79", "3-1", "x", "1,,2"):
        with pytest.raises(rplacevit.ArgumentError):
            dl.parse_parts(bad, 79)
    assert dl.plan(2022, "12")[0].url == "https://placedata.reddit.com/data/canvas-history/2022_place_canvas_history-000000000012.csv.gzip"
    assert dl.plan(2023, "52")[0].url.endswith("/canvas-history/2023/2023_place_canvas_history-000000000052.csv.gzip")
    assert dl.plan(2022, combined=True)[0].name == "2022_place_canvas_history.csv.gzip"
    assert dl.plan(2017)[0].url == "https://storage.googleapis.com/place_data_share/place_tiles.csv"


def test_ingest_of_the_downloaded_folder_equals_ingest_of_the_combined_file(server, parts, tmp_path):
    server.files.update(parts)
    assert fetch(server, tmp_path / "files") == 0
    (tmp_path / "files" / "notes.txt").write_text("not data")
    by_folder = rplacevit.ingest(tmp_path / "files", tmp_path / "a", progress=False)
    whole = rplacevit.ingest(rplacevit.SAMPLE_CSV, tmp_path / "b", progress=False)
    assert by_folder["events"] == whole["events"] == 102_670
    a, b = rplacevit.open(tmp_path / "a").events(), rplacevit.open(tmp_path / "b").events()
    assert all((a[key] == b[key]).all() for key in a)
    assert (tmp_path / "a" / "snapshots.npy").read_bytes() == (tmp_path / "b" / "snapshots.npy").read_bytes()
    # A file that differs from what the manifest recorded is named, and nothing is ingested.
    victim = tmp_path / "files" / dl.part_name(2022, 2)
    data = victim.read_bytes()
    victim.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(rplacevit.ArgumentError, match=re.escape(f"{victim}: ") + ".*rplacevit download --verify"):
        rplacevit.ingest(tmp_path / "files", tmp_path / "c", progress=False)
    assert not (tmp_path / "c").exists()


def test_get_downloads_ingests_verifies_and_resumes_at_every_stage(server, parts, tmp_path, capsys):
    server.files.update(parts)
    argv = ["get", "--year", "2022", "--parts", "0-2", "-o", str(tmp_path / "place"), "--base-url", server.url, "--quiet"]
    assert main(argv) == 0
    assert rplacevit.info(tmp_path / "place")["events"] == 102_670
    assert sorted(p.name for p in (tmp_path / "place-files").glob("*.csv.gzip")) == sorted(parts)
    generation = rplacevit.info(tmp_path / "place")["generation"]
    gets = len([r for r in server.requests if r[0] == "GET"])
    assert main([a for a in argv if a != "--quiet"]) == 0
    assert "kept" in capsys.readouterr().out
    assert rplacevit.info(tmp_path / "place")["generation"] == generation  # not rebuilt
    assert len([r for r in server.requests if r[0] == "GET"]) == gets  # not fetched again


def test_get_2017_keeps_the_good_rows_of_the_mirror(server, tmp_path):
    """The 2017 mirror is one file with bad rows (empty fields, x or y = 1000): get skips them
    into rejects.csv instead of stopping."""
    server.files[dl.SINGLE_FILES[2017]] = (DATA / "place_tiles_2017.csv").read_bytes()
    assert main(["get", "--year", "2017", "-o", str(tmp_path / "place"), "--base-url", server.url, "--quiet"]) == 0
    info = rplacevit.info(tmp_path / "place")
    assert (info["year"], info["events"], info["rejected_rows"]) == (2017, 2, 5)
    assert (tmp_path / "place" / "rejects.csv").exists()


def test_an_interrupted_download_keeps_its_part_and_the_next_run_finishes(server, parts, tmp_path, monkeypatch):
    server.files.update(parts)
    name = dl.part_name(2022, 0)
    seen = []

    def interrupt_after_the_first_chunk(self, n):
        seen.append(n)
        if len(seen) == 1:
            raise KeyboardInterrupt()

    original = dl.Downloader.__init__

    def patched(self, folder, retries, stop, on_bytes, client, **kwargs):
        original(self, folder, retries, stop, lambda n: interrupt_after_the_first_chunk(self, n), client, **kwargs)

    monkeypatch.setattr(dl.Downloader, "__init__", patched)
    with pytest.raises(KeyboardInterrupt):
        dl.download(tmp_path, parts="0", base_url=server.url, progress=False, jobs=1)
    assert not (tmp_path / name).exists() and (tmp_path / (name + ".part")).exists()
    monkeypatch.setattr(dl.Downloader, "__init__", original)
    assert dl.download(tmp_path, parts="0", base_url=server.url, progress=False)["files"] == {name: "downloaded"}
    assert (tmp_path / name).read_bytes() == parts[name]
    assert [r[2] for r in server.requests if r[0] == "GET"][-1] is not None  # continued with a Range


def test_a_second_download_into_the_same_folder_is_refused(server, parts, tmp_path):
    from filelock import FileLock

    server.files.update(parts)
    outputs.create(tmp_path, "download", allowed=True)  # as the first download did, before its lock
    with FileLock(tmp_path / ".download.lock"):
        with pytest.raises(dl.DownloadError, match="another download is writing this folder"):
            dl.download(tmp_path, parts="0", base_url=server.url, progress=False)


def test_a_disk_that_fills_midway_is_named_and_keeps_the_part(server, parts, tmp_path, capsys, monkeypatch):
    import os
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    disk = tmp_path / "small"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(disk)], capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        server.files.update(parts)

        class Plenty:
            free = 1 << 40

        monkeypatch.setattr(dl.shutil, "disk_usage", lambda path: Plenty)  # the disk fills after the check
        name = dl.part_name(2022, 0)
        assert fetch(server, disk, parts="0") == 1
        assert capsys.readouterr().err.strip() == (f"rplacevit: error: {disk / (name + '.part')}: No space left on device (what was "
                                                   "written is kept: make room, then run again to continue)")
        assert not (disk / name).exists() and (disk / (name + ".part")).stat().st_size > 0
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_sigterm_stops_the_download_and_keeps_the_parts(server, parts, tmp_path):
    import signal
    import subprocess
    import sys

    server.files.update(parts)
    for name in parts:
        server.faults[name] = ["slow"]
    process = subprocess.Popen([sys.executable, "-m", "rplacevit", "download", "--parts", "0-2", "-o", str(tmp_path), "--base-url",
                                server.url, "--quiet"], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not any(p.stat().st_size > 0 for p in tmp_path.glob("*.part")):
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 143
    assert process.stderr.read().strip() == "rplacevit: terminated"
    assert list(tmp_path.glob("*.csv.gzip")) == [] and list(tmp_path.glob("*.part"))
    assert dl.download(tmp_path, parts="0-2", base_url=server.url, progress=False)["files"] == {n: "downloaded" for n in parts}
    assert all((tmp_path / n).read_bytes() == d for n, d in parts.items())


def test_a_url_list_fetches_exactly_its_urls(server, parts, tmp_path, capsys):
    server.files.update(parts)
    names = sorted(parts)[:2]
    listing = tmp_path / "urls.txt"
    listing.write_text("# two parts, wherever they are\n\n" + "".join(f"{server.url}{name}\n" for name in names))
    assert main(["download", "--url-list", str(listing), "-o", str(tmp_path / "files"), "--quiet"]) == 0
    assert sorted(p.name for p in (tmp_path / "files").glob("*.csv.gzip")) == names
    assert {r[1] for r in server.requests} == set(names)
    listing.write_text(f"{server.url}{names[0]}\n{server.url}other/{names[0]}\n")
    assert main(["download", "--url-list", str(listing), "-o", str(tmp_path / "more")]) == 2
    assert "two URLs end in the same file name" in capsys.readouterr().err


def test_a_folder_with_an_unfinished_or_missing_file_is_not_ingested(server, parts, tmp_path):
    server.files.update(parts)
    assert fetch(server, tmp_path) == 0
    (tmp_path / dl.part_name(2022, 1)).rename(tmp_path / "aside")
    with pytest.raises(rplacevit.ArgumentError, match="listed in .*manifest.json but missing"):
        rplacevit.ingest(tmp_path, tmp_path / "d", progress=False)
    (tmp_path / "aside").rename(tmp_path / (dl.part_name(2022, 1) + ".part"))
    with pytest.raises(rplacevit.ArgumentError, match=r"\.part: an unfinished download"):
        rplacevit.ingest(tmp_path, tmp_path / "d", progress=False)
    assert not (tmp_path / "d").exists()


def test_listed_urls_need_a_plain_file_name(tmp_path):
    listing = tmp_path / "urls.txt"
    listing.write_text("https://example.org/data/a.csv.gzip?X-Signature=abc\nhttps://example.org/b%20c.csv\n")
    assert [r.name for r in dl.plan(url_list=listing)] == ["a.csv.gzip", "b c.csv"]
    for bad in ("https://example.org/", "https://example.org/x/manifest.json", "https://example.org/.hidden", "https://e.org/x/.."):
        listing.write_text(bad + "\n")
        with pytest.raises(rplacevit.ArgumentError, match="usable file name"):
            dl.plan(url_list=listing)


def test_a_body_longer_than_announced_stops_at_the_announced_size(server, parts, tmp_path, capsys):
    """A server that sends more than HEAD announced (declared or chunked without end) fills no
    more than the announced size, and leaves no .part of it behind."""
    name = dl.part_name(2022, 0)
    server.files[name] = parts[name]
    url = server.url + name
    for fault in ("longer", "endless"):
        server.faults[name] = [fault]
        assert fetch(server, tmp_path, "--retries", "0", parts="0") == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"rplacevit: error: {url}: ") and f"{len(parts[name]):,} bytes announced" in err, err
        assert "\n" not in err and not (tmp_path / name).exists() and not (tmp_path / (name + ".part")).exists()
    assert fetch(server, tmp_path, parts="0") == 0  # the next run, the server mended, fetches it whole
    assert (tmp_path / name).read_bytes() == parts[name]


def test_a_body_without_a_size_is_refused_unless_the_size_is_known(server, parts, tmp_path, capsys):
    """No Content-Length on HEAD nor GET: nothing bounds the body, so the download needs the size
    from the URL list (``URL BYTES``) or from the folder's manifest."""
    name = dl.part_name(2022, 0)
    server.files[name] = parts[name]
    server.no_length.add(name)
    url = server.url + name
    assert fetch(server, tmp_path / "a", parts="0") == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"rplacevit: error: {url}: no size announced") and "\n" not in err, err
    assert not list((tmp_path / "a").glob("*.csv.gzip*"))
    listing = tmp_path / "urls.txt"
    listing.write_text(f"{url} {len(parts[name])}\n")
    assert main(["download", "--url-list", str(listing), "-o", str(tmp_path / "b"), "--quiet"]) == 0
    assert (tmp_path / "b" / name).read_bytes() == parts[name]
    server.faults[name] = ["endless"]  # the listed size bounds it too
    (tmp_path / "b" / name).write_bytes(bytes(len(parts[name])))
    assert main(["download", "--url-list", str(listing), "-o", str(tmp_path / "b"), "--quiet", "--verify", "--retries", "0"]) == 1
    assert f"{url}: " in capsys.readouterr().err and not (tmp_path / "b" / (name + ".part")).exists()
    # The manifest's size serves as well: a damaged file is fetched again without a listed size.
    listing.write_text(f"{url}\n")
    assert main(["download", "--url-list", str(listing), "-o", str(tmp_path / "b"), "--quiet", "--verify"]) == 0
    assert (tmp_path / "b" / name).read_bytes() == parts[name]
    listing.write_text(f"{url} {len(parts[name]) + 1}\n")
    server.no_length.clear()
    assert main(["download", "--url-list", str(listing), "-o", str(tmp_path / "c"), "--quiet"]) == 1
    assert f"{url}: the server announces {len(parts[name]):,} bytes, the URL list {len(parts[name]) + 1:,}" in capsys.readouterr().err


def test_a_redirect_loop_is_one_line_naming_the_url(server, parts, tmp_path, capsys):
    server.files.update(parts)
    looping, later = dl.part_name(2022, 0), dl.part_name(2022, 1)
    server.loops.add(looping)  # at the HEAD already
    server.faults[later] = ["redirect"] * 25  # only at the GET
    for name, part in ((looping, "0"), (later, "1")):
        assert fetch(server, tmp_path, parts=part) == 1
        assert capsys.readouterr().err.strip() == f"rplacevit: error: {server.url + name}: too many redirects"


def test_a_deeply_nested_manifest_is_named_not_a_recursion_error(server, parts, tmp_path, capsys):
    server.files.update(parts)
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "manifest.json").write_text("[" * 100_000)
    assert fetch(server, folder) == 1
    assert capsys.readouterr().err.strip() == (f"rplacevit: error: {folder / 'manifest.json'}: not a download manifest (remove it to "
                                               "start over)")
    (folder / dl.part_name(2022, 0)).write_bytes(parts[dl.part_name(2022, 0)])
    with pytest.raises(dl.DownloadError, match=re.escape(f"{folder / 'manifest.json'}: not a download manifest")):
        rplacevit.ingest(folder, tmp_path / "dataset", progress=False)
    assert not (tmp_path / "dataset").exists()


@pytest.mark.parametrize("fault", ["stall", "stall-body"])
def test_a_stop_ends_a_stalled_transfer_within_seconds(server, parts, tmp_path, fault):
    """The server answers HEAD, then holds the GET (before its answer, or midway through the
    body): SIGTERM ends the run at once, not after the read timeout."""
    import signal
    import subprocess
    import sys

    name = dl.part_name(2022, 0)
    server.files[name] = parts[name]
    server.faults[name] = [fault]
    process = subprocess.Popen([sys.executable, "-m", "rplacevit", "download", "--parts", "0", "-o", str(tmp_path), "--base-url",
                                server.url, "--quiet"], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not any(r[0] == "GET" for r in server.requests):
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.05)
        time.sleep(0.5)  # the transfer is in its read now
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 143
        assert time.monotonic() - started < 3
        assert process.stderr.read().strip() == "rplacevit: terminated"
    finally:
        process.kill()
        process.wait()
    assert not (tmp_path / name).exists()


def test_a_transfer_slower_than_the_floor_is_retried(server, parts, tmp_path, capsys, monkeypatch):
    """A server trickling 20 bytes a second: the transfer fails when a window brings less than
    the floor, and the retry continues what it kept."""
    monkeypatch.setattr(dl, "STALL_WINDOW_S", 0.5)
    name = dl.part_name(2022, 0)
    server.files[name] = parts[name]
    server.faults[name] = ["trickle"]
    started = time.monotonic()
    assert fetch(server, tmp_path, parts="0") == 0
    assert time.monotonic() - started < 8
    assert (tmp_path / name).read_bytes() == parts[name]
    assert [r[2] is not None for r in server.requests if r[0] == "GET"] == [False, True]  # continued with a Range
    (tmp_path / name).unlink()
    (tmp_path / "manifest.json").unlink()
    server.faults[name] = ["trickle"]
    assert fetch(server, tmp_path, "--retries", "0", parts="0") == 1
    err = capsys.readouterr().err.strip()
    assert re.fullmatch(rf"rplacevit: error: {re.escape(server.url + name)}: slower than 1,024 bytes/s over 0.5 s, after 1 attempts "
                        rf"\([\d,]+ of {len(parts[name]):,} bytes; the \.part is kept: run again to continue\)", err), err


def test_listed_names_with_control_or_format_characters_are_refused(tmp_path):
    listing = tmp_path / "urls.txt"
    for bad in ("https://e.org/a%0Ab.csv", "https://e.org/a%E2%80%AEvsc.exe", "https://e.org/a\u202evsc.csv", "https://e.org/a%00.csv",
                "https://e.org/a%7F.csv", "https://e.org/a%C2%85.csv", "https://e.org/a%E2%80%8B.csv"):
        listing.write_text(bad + "\n")
        with pytest.raises(rplacevit.ArgumentError, match="usable file name") as error:
            dl.plan(url_list=listing)
        assert repr(bad) in str(error.value) and "\n" not in str(error.value)


def test_credentials_in_a_listed_url_are_used_but_never_written_or_shown(server, parts, tmp_path, capsys):
    import base64

    server.files.update(parts)
    name = dl.part_name(2022, 0)
    host = server.url.removeprefix("http://")
    listing = tmp_path / "urls.txt"
    listing.write_text(f"http://user:secret@{host}{name}\n")
    assert main(["download", "--url-list", str(listing), "-o", str(tmp_path / "files"), "--quiet"]) == 0
    assert (tmp_path / "files" / name).read_bytes() == parts[name]
    assert set(server.authorizations) == {"Basic " + base64.b64encode(b"user:secret").decode()}
    assert json.loads((tmp_path / "files" / "manifest.json").read_text())["files"][name]["url"] == server.url + name
    assert not [p for p in (tmp_path / "files").iterdir() if b"secret" in p.read_bytes()]
    listing.write_text(f"http://user:secret@{host}missing.csv.gzip\n")
    assert main(["download", "--url-list", str(listing), "-o", str(tmp_path / "more")]) == 1
    err = capsys.readouterr().err
    assert f"rplacevit: error: {server.url}missing.csv.gzip: HTTP 404" in err and "secret" not in err


def test_a_file_no_download_wrote_is_never_replaced(server, parts, tmp_path, capsys):
    server.files.update(parts)
    server.files["notes.csv"] = b"theirs\n"
    folder = tmp_path / "files"
    assert fetch(server, folder, parts="0") == 0
    listing = tmp_path / "urls.txt"
    for mine in ("notes.csv", "notes.csv.part"):
        (folder / mine).write_text("my notes\n")
        listing.write_text(f"{server.url}notes.csv\n")
        assert main(["download", "--url-list", str(listing), "-o", str(folder), "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"rplacevit download: error: {folder / mine}: ") and "not written by rplacevit download" in err, err
        assert (folder / mine).read_text() == "my notes\n"
        (folder / mine).unlink()
    assert [r for r in server.requests if r[1] == "notes.csv"] == []


def test_a_download_into_a_folder_of_the_users_is_refused(server, parts, tmp_path, capsys):
    server.files.update(parts)
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "thesis.tex").write_text("\\documentclass{article}\n")
    assert fetch(server, folder) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"rplacevit download: error: {folder}") and "not written by rplacevit" in err, err
    assert [p.name for p in folder.iterdir()] == ["thesis.tex"] and server.requests == []
    # A download folder made before the marker (its files say what it is) is resumed into.
    assert fetch(server, tmp_path / "old", parts="0") == 0
    (tmp_path / "old" / outputs.MARKER).unlink()
    assert fetch(server, tmp_path / "old", parts="0-1") == 0
    assert "1 downloaded, 1 complete" in capsys.readouterr().out
