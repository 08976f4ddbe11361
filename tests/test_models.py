"""The model store against a loopback HTTP server and a test manifest: fetch, install_from, verify, resolve."""

from __future__ import annotations

import _thread
import hashlib
import io
import json
import os
import socket
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from edge import models
from edge.cli import main
from edge.errors import EdgeError

MODEL_BYTES = b"\x1c\x00\x00\x00TFL3" + bytes(range(256)) * 600  # made up, ~150 kB
OTHER_BYTES = b"\x1c\x00\x00\x00TFL3" + b"something else" * 100
LABEL_BYTES = b"red\ngreen\nblue"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def targz(members: dict[str, bytes], symlinks: dict[str, str] | None = None) -> bytes:
    """A .tar.gz holding ``members`` under exactly the names given (``../`` included)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (symlinks or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return buf.getvalue()


# --------------------------------------------------------------------------- loopback server


class Handler(BaseHTTPRequestHandler):
    """Serves ``server.routes``; ``/cut/...`` promises more bytes than it sends, ``/interrupt/...`` hits Ctrl-C."""

    def do_GET(self) -> None:  # noqa: N802
        self.server.hits.append(self.path)
        mode, path = "plain", self.path
        for prefix in ("/cut/", "/interrupt/"):
            if self.path.startswith(prefix):
                mode, path = prefix.strip("/"), self.path[len(prefix) - 1:]
        body = self.server.routes.get(path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body) + (1000 if mode == "cut" else 0)))
        self.end_headers()
        try:
            if mode == "interrupt":
                half = len(body) // 2
                self.wfile.write(body[:half])
                self.wfile.flush()
                _thread.interrupt_main()  # the user presses Ctrl-C half way through
                self.wfile.write(body[half:])
            else:
                self.wfile.write(body)
        except OSError:
            pass  # the client went away

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.routes = {}
    httpd.hits = []
    httpd.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)
    assert not thread.is_alive()


def write_manifest(folder: Path, base: str, *, m0_sha: str | None = None, m0_path: str = "/m0.tar.gz",
                   m1_path: str = "/m1.tar.gz") -> Path:
    data = {
        "models": {
            "m0": {"url": base + m0_path, "archive": "tar.gz", "file": "m0.tflite",
                   "sha256": m0_sha if m0_sha is not None else sha(MODEL_BYTES),
                   "input_size": [172, 172], "labels": "lab"},
            "m1": {"url": base + m1_path, "archive": "tar.gz", "file": "m1.tflite", "sha256": None,
                   "input_size": [224, 224], "labels": "lab"},
        },
        "labels": {
            "lab": {"url": base + "/labels.txt", "archive": "none", "file": "lab.txt", "sha256": sha(LABEL_BYTES)},
        },
    }
    path = folder / "manifest.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.fixture
def store(tmp_path: Path, server):
    """(manifest path, empty model folder) with the server serving a good m0, m1 and labels."""
    server.routes.update({
        "/m0.tar.gz": targz({"1.tflite": MODEL_BYTES}),
        "/m1.tar.gz": targz({"1.tflite": OTHER_BYTES}),
        "/labels.txt": LABEL_BYTES,
    })
    folder = tmp_path / "models"
    return write_manifest(tmp_path, server.base), folder


def listing(folder: Path) -> list[str]:
    """Every name in the folder, hidden temporary files included."""
    return sorted(os.listdir(folder)) if folder.exists() else []


# --------------------------------------------------------------------------- fetch


def test_fetch_installs_model_and_its_labels(store):
    manifest, folder = store
    out = io.StringIO()
    results = models.fetch(["m0"], folder, progress=False, manifest=manifest, out=out)
    assert [(r.name, r.status) for r in results] == [("m0", "installed"), ("lab", "installed")]
    assert (folder / "m0.tflite").read_bytes() == MODEL_BYTES
    assert (folder / "lab.txt").read_bytes() == LABEL_BYTES
    assert (folder / "m0.tflite").stat().st_mode & 0o777 == 0o644
    assert listing(folder) == ["lab.txt", "m0.tflite"]
    assert "m0: installed" in out.getvalue()


def test_fetch_again_skips_without_downloading(store, server):
    manifest, folder = store
    models.fetch(["m0"], folder, progress=False, manifest=manifest, out=io.StringIO())
    hits = len(server.hits)
    out = io.StringIO()
    results = models.fetch(["m0"], folder, progress=False, manifest=manifest, out=out)
    assert [r.status for r in results] == ["skipped", "skipped"]
    assert len(server.hits) == hits
    assert "already installed, sha256 ok" in out.getvalue()


def test_fetch_replaces_a_corrupt_installed_file(store):
    manifest, folder = store
    folder.mkdir()
    (folder / "m0.tflite").write_bytes(b"garbage")
    results = models.fetch(["m0"], folder, progress=False, manifest=manifest, out=io.StringIO())
    assert results[0].status == "installed"
    assert (folder / "m0.tflite").read_bytes() == MODEL_BYTES


def test_wrong_sha_is_an_error_and_leaves_nothing(tmp_path, server, store):
    _, folder = store
    manifest = write_manifest(tmp_path, server.base, m0_sha=sha(b"what upstream used to serve"))
    with pytest.raises(EdgeError, match=f"expected {sha(b'what upstream used to serve')}, got {sha(MODEL_BYTES)}"
                                        r".*may be corrupt or the upstream file changed"):
        models.fetch(["m0"], folder, progress=False, manifest=manifest, out=io.StringIO())
    assert listing(folder) == []


def test_http_404_is_a_clear_error_and_leaves_nothing(tmp_path, server, store):
    _, folder = store
    manifest = write_manifest(tmp_path, server.base, m0_path="/gone.tar.gz")
    with pytest.raises(EdgeError, match=r"download of m0 failed: HTTP 404"):
        models.fetch(["m0"], folder, progress=False, manifest=manifest, out=io.StringIO())
    assert listing(folder) == []


def test_connection_refused_is_a_clear_error_and_leaves_nothing(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    manifest = write_manifest(tmp_path, f"http://127.0.0.1:{port}")
    folder = tmp_path / "models"
    with pytest.raises(EdgeError, match=r"download of m0 failed: cannot reach 127\.0\.0\.1:\d+ .*check the network"):
        models.fetch(["m0"], folder, progress=False, manifest=manifest, out=io.StringIO(), timeout=5)
    assert listing(folder) == []


def test_cut_off_download_leaves_nothing(tmp_path, server, store):
    _, folder = store
    manifest = write_manifest(tmp_path, server.base, m0_path="/cut/m0.tar.gz")
    with pytest.raises(EdgeError, match=r"download of m0 from 127\.0\.0\.1:\d+ was cut off"):
        models.fetch(["m0"], folder, progress=False, manifest=manifest, out=io.StringIO(), timeout=10)
    assert listing(folder) == []


def test_ctrl_c_during_download_leaves_nothing(tmp_path, server, store):
    _, folder = store
    server.routes["/big.tar.gz"] = targz({"1.tflite": os.urandom(4 << 20)})  # incompressible, several reads
    manifest = write_manifest(tmp_path, server.base, m0_path="/interrupt/big.tar.gz")
    with pytest.raises(KeyboardInterrupt):
        models.fetch(["m0"], folder, progress=False, manifest=manifest, out=io.StringIO(), timeout=10)
    assert listing(folder) == []


def test_unknown_sha_is_recorded_and_said(store):
    manifest, folder = store
    out = io.StringIO()
    results = models.fetch(["m1"], folder, progress=False, manifest=manifest, out=out)
    assert [(r.name, r.status) for r in results] == [("m1", "recorded"), ("lab", "installed")]
    assert "NOT verified against a known checksum" in out.getvalue()
    assert f"recorded as {sha(OTHER_BYTES)}" in out.getvalue()
    assert "verify it against the upstream release" in out.getvalue()
    record = json.loads((folder / "downloads.json").read_text())["m1"]
    assert record["sha256"] == sha(OTHER_BYTES)
    assert record["size"] == len(OTHER_BYTES)
    assert record["url"].endswith("/m1.tar.gz")
    assert record["date"]
    rows = {r.name: r for r in models.verify(folder, manifest=manifest)}
    assert rows["m1"].status == "recorded"
    # a second fetch trusts the record; a changed file no longer matches it
    assert models.fetch(["m1"], folder, progress=False, manifest=manifest, out=io.StringIO())[0].status == "skipped"
    (folder / "m1.tflite").write_bytes(b"changed")
    assert {r.name: r.status for r in models.verify(folder, manifest=manifest)}["m1"] == "mismatch"


def test_tar_members_other_than_1_tflite_are_never_written(tmp_path, server, store):
    _, folder = store
    server.routes["/evil.tar.gz"] = targz({
        "../evil.tflite": b"escaped",
        str(tmp_path / "absolute.tflite"): b"escaped",
        "sub/../../1.tflite": b"escaped",
        "1.tflite": MODEL_BYTES,
    }, symlinks={"link.tflite": "/etc/passwd"})
    manifest = write_manifest(tmp_path, server.base, m0_path="/evil.tar.gz")
    models.fetch(["m0"], folder, progress=False, manifest=manifest, out=io.StringIO())
    assert (folder / "m0.tflite").read_bytes() == MODEL_BYTES
    assert listing(folder) == ["lab.txt", "m0.tflite"]
    assert not (tmp_path / "evil.tflite").exists()
    assert not (tmp_path / "absolute.tflite").exists()


def test_archive_with_only_a_traversal_member_is_an_error(tmp_path, server, store):
    _, folder = store
    server.routes["/evil.tar.gz"] = targz({"../1.tflite": MODEL_BYTES})
    manifest = write_manifest(tmp_path, server.base, m0_path="/evil.tar.gz")
    with pytest.raises(EdgeError, match=r"has no 1\.tflite \(found \.\./1\.tflite\)"):
        models.fetch(["m0"], folder, progress=False, manifest=manifest, out=io.StringIO())
    assert listing(folder) == []
    assert not (tmp_path / "1.tflite").exists()


def test_symlink_named_1_tflite_is_refused(tmp_path, server, store):
    _, folder = store
    server.routes["/link.tar.gz"] = targz({}, symlinks={"1.tflite": "/etc/passwd"})
    manifest = write_manifest(tmp_path, server.base, m0_path="/link.tar.gz")
    with pytest.raises(EdgeError, match="not a regular file"):
        models.fetch(["m0"], folder, progress=False, manifest=manifest, out=io.StringIO())
    assert listing(folder) == []


def test_not_an_archive_is_an_error(tmp_path, server, store):
    _, folder = store
    server.routes["/html.tar.gz"] = b"<html>sign in</html>"
    manifest = write_manifest(tmp_path, server.base, m0_path="/html.tar.gz")
    with pytest.raises(EdgeError, match="not a valid tar.gz archive"):
        models.fetch(["m0"], folder, progress=False, manifest=manifest, out=io.StringIO())
    assert listing(folder) == []


def test_fetch_all_and_labels(store):
    manifest, folder = store
    assert [r.name for r in models.fetch(["labels"], folder, progress=False, manifest=manifest,
                                         out=io.StringIO())] == ["lab"]
    results = models.fetch(["all"], folder, progress=False, manifest=manifest, out=io.StringIO())
    assert [(r.name, r.status) for r in results] == [("m0", "installed"), ("m1", "recorded"), ("lab", "skipped")]


def test_unknown_name_lists_the_choices(store):
    manifest, folder = store
    with pytest.raises(EdgeError, match=r"unknown model 'm9': choose from m0, m1, labels, all"):
        models.fetch(["m9"], folder, progress=False, manifest=manifest)


# --------------------------------------------------------------------------- install_from


def test_install_from_copies_and_verifies(tmp_path, store):
    manifest, folder = store
    src = tmp_path / "src"
    src.mkdir()
    (src / "m0.tflite").write_bytes(MODEL_BYTES)
    (src / "lab.txt").write_bytes(LABEL_BYTES)
    (src / "unrelated.bin").write_bytes(b"x")
    out = io.StringIO()
    results = models.install_from(src, folder, manifest=manifest, out=out)
    assert [(r.name, r.status) for r in results] == [("m0", "installed"), ("lab", "installed")]
    assert listing(folder) == ["lab.txt", "m0.tflite"]
    assert (folder / "m0.tflite").read_bytes() == MODEL_BYTES
    assert "not in" in out.getvalue() and "m1.tflite" in out.getvalue()
    again = models.install_from(src, folder, ["m0"], manifest=manifest, out=io.StringIO())
    assert [r.status for r in again] == ["skipped", "skipped"]


def test_install_from_refuses_a_bad_copy(tmp_path, store):
    manifest, folder = store
    src = tmp_path / "src"
    src.mkdir()
    (src / "m0.tflite").write_bytes(MODEL_BYTES[:-1])
    (src / "lab.txt").write_bytes(LABEL_BYTES)
    with pytest.raises(EdgeError, match="m0: sha256 mismatch"):
        models.install_from(src, folder, ["m0"], manifest=manifest, out=io.StringIO())
    assert "m0.tflite" not in listing(folder)
    assert not [n for n in listing(folder) if n.startswith(".")]


def test_install_from_names_missing_files(tmp_path, store):
    manifest, folder = store
    src = tmp_path / "src"
    src.mkdir()
    (src / "lab.txt").write_bytes(LABEL_BYTES)
    with pytest.raises(EdgeError, match=r"m1\.tflite not found in .*src"):
        models.install_from(src, folder, ["m1"], manifest=manifest)
    with pytest.raises(EdgeError, match="does not exist"):
        models.install_from(tmp_path / "nope", folder, manifest=manifest)
    assert listing(folder) == []


def test_install_from_records_unknown_sha(tmp_path, store):
    manifest, folder = store
    src = tmp_path / "src"
    src.mkdir()
    (src / "m1.tflite").write_bytes(OTHER_BYTES)
    (src / "lab.txt").write_bytes(LABEL_BYTES)
    results = models.install_from(src, folder, ["m1"], manifest=manifest, out=io.StringIO())
    assert results[0].status == "recorded"
    assert json.loads((folder / "downloads.json").read_text())["m1"]["url"].startswith("file://")


# --------------------------------------------------------------------------- verify, list, cli


def test_verify_rows(store):
    manifest, folder = store
    folder.mkdir()
    (folder / "m0.tflite").write_bytes(MODEL_BYTES)
    (folder / "lab.txt").write_bytes(b"tampered")
    (folder / "m1.tflite").write_bytes(OTHER_BYTES)  # unknown upstream, never recorded
    rows = {r.name: r for r in models.list_models(folder, manifest=manifest)}
    assert {n: (r.installed, r.status) for n, r in rows.items()} == {
        "m0": (True, "ok"), "m1": (True, "unknown"), "lab": (True, "mismatch")}
    assert rows["m0"].input_size == (172, 172)
    (folder / "m1.tflite").unlink()
    assert {r.name: r.status for r in models.verify(folder, manifest=manifest)}["m1"] == "missing"


def test_cli_verify_exits_1_on_mismatch(store, monkeypatch, capsys):
    manifest, folder = store
    monkeypatch.setenv("EDGE_MANIFEST", str(manifest))
    monkeypatch.setenv("EDGE_MODEL_DIR", str(folder))
    folder.mkdir()
    (folder / "m0.tflite").write_bytes(MODEL_BYTES)
    assert main(["models", "verify"]) == 0
    (folder / "m0.tflite").write_bytes(b"tampered")
    assert main(["models", "verify"]) == 1
    assert 'edge models fetch m0 --force' in capsys.readouterr().err


def test_cli_fetch_and_list(store, monkeypatch, capsys):
    manifest, folder = store
    monkeypatch.setenv("EDGE_MANIFEST", str(manifest))
    monkeypatch.setenv("EDGE_MODEL_DIR", str(folder))
    assert main(["models", "fetch", "m0"]) == 0
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "m0           172x172  yes" in out
    assert "m1           224x224  no" in out
    assert main(["models", "fetch", "m9"]) == 2


# --------------------------------------------------------------------------- resolve


@pytest.fixture
def installed(store):
    manifest, folder = store
    folder.mkdir()
    (folder / "m0.tflite").write_bytes(MODEL_BYTES)
    (folder / "lab.txt").write_bytes(LABEL_BYTES)
    return manifest, folder


def test_resolve_a_name(installed):
    manifest, folder = installed
    assert models.resolve("m0", manifest=manifest, directory=folder) == (folder / "m0.tflite", folder / "lab.txt")
    assert models.resolve("M0", manifest=manifest, directory=folder)[0] == folder / "m0.tflite"
    explicit = folder / "lab.txt"
    assert models.resolve("m0", str(explicit), manifest=manifest, directory=folder)[1] == explicit


def test_resolve_a_missing_name_says_how_to_fetch(installed):
    manifest, folder = installed
    with pytest.raises(EdgeError, match=f'model m1 is not installed in {folder}: run "edge models fetch m1"'):
        models.resolve("m1", manifest=manifest, directory=folder)


def test_resolve_default_uses_env(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGE_MODEL_DIR", str(tmp_path))
    assert models.model_dir() == tmp_path
    with pytest.raises(EdgeError, match=f'model a0 is not installed in {tmp_path}: run "edge models fetch a0"'):
        models.resolve(None)


def test_resolve_custom_path_labels(tmp_path):
    model = tmp_path / "mine.tflite"
    model.write_bytes(MODEL_BYTES)
    assert models.resolve(str(model)) == (model, None)
    (tmp_path / "labels.txt").write_text("a\n")
    assert models.resolve(str(model)) == (model, tmp_path / "labels.txt")
    (tmp_path / "mine.txt").write_text("a\n")
    assert models.resolve(str(model)) == (model, tmp_path / "mine.txt")
    other = tmp_path / "other.txt"
    other.write_text("a\n")
    assert models.resolve(str(model), str(other)) == (model, other)


def test_resolve_missing_custom_path_or_labels(tmp_path):
    with pytest.raises(EdgeError, match=r"model .*nope\.tflite is neither a0, a1, a2 nor an existing file"):
        models.resolve(str(tmp_path / "nope.tflite"))
    model = tmp_path / "mine.tflite"
    model.write_bytes(MODEL_BYTES)
    with pytest.raises(EdgeError, match=r"label file .*missing\.txt does not exist"):
        models.resolve(str(model), str(tmp_path / "missing.txt"))
    with pytest.raises(EdgeError, match="is a folder"):
        models.resolve(str(tmp_path))


# --------------------------------------------------------------------------- manifest, folder, progress


def test_packaged_manifest():
    m = models.load_manifest()
    assert [e.name for e in m.models] == ["a0", "a1", "a2"]
    assert m.get("a0").sha256 == "6125b36e2485eeb5cc1fd6206cf5e5d70235593fbc84610d1dce97fe3aa9c2ac"
    assert m.get("a0").input_size == (172, 172) and m.get("a2").input_size == (224, 224)
    assert m.get("a1").sha256 is None and m.get("a2").sha256 is None
    assert m.get("kinetics600").file == "kinetics600_label_map.txt"
    assert [e.name for e in m.expand(["a1"])] == ["a1", "kinetics600"]


def test_manifest_from_env(monkeypatch, store):
    manifest, _ = store
    monkeypatch.setenv("EDGE_MANIFEST", str(manifest))
    assert [e.name for e in models.load_manifest().models] == ["m0", "m1"]


@pytest.mark.parametrize("bad, message", [
    ({"file": "../escape.tflite"}, r"models\.m0\.file must be a plain file name"),
    ({"archive": "zip"}, r"models\.m0\.archive must be one of"),
    ({"sha256": "abc"}, r"models\.m0\.sha256 must be 64"),
    ({"input_size": [172]}, r"models\.m0\.input_size"),
    ({"labels": "nope"}, r"models\.m0\.labels names 'nope'"),
])
def test_manifest_errors_name_the_key(tmp_path, bad, message):
    path = write_manifest(tmp_path, "http://127.0.0.1:9")
    data = json.loads(path.read_text())
    data["models"]["m0"].update(bad)
    path.write_text(json.dumps(data))
    with pytest.raises(EdgeError, match=message):
        models.load_manifest(path)


def test_model_dir_in_a_checkout(monkeypatch):
    monkeypatch.delenv("EDGE_MODEL_DIR", raising=False)
    repo = Path(models.__file__).resolve().parent.parent
    if not (repo / "pyproject.toml").is_file():
        pytest.skip("edge is not running from a checkout")
    assert models.model_dir() == repo / "models"


def test_progress_without_a_terminal_prints_a_line_every_ten_percent():
    stream = io.StringIO()
    bar = models.download_bar("a0:", 1000, stream=stream, tty=False)
    for _ in range(100):
        bar.update(10)
    bar.close()
    lines = stream.getvalue().splitlines()
    assert [line.split()[1] for line in lines] == [f"{p}%" for p in range(0, 101, 10)]  # 0 %: it started
    assert "\r" not in stream.getvalue()
    assert lines[-1].startswith("a0: 100%  0.0/0.0 MB")
    assert lines[-1].endswith(("MB/s", "s/MB"))  # tqdm turns a rate under 1 MB/s round (slow CI, qemu)


def test_progress_without_a_size_prints_a_line_every_five_mb():
    stream = io.StringIO()
    bar = models.download_bar("a0:", None, stream=stream, tty=False)
    for _ in range(12):
        bar.update(1 << 20)
    bar.close()
    lines = stream.getvalue().splitlines()
    assert [line.split()[1] for line in lines] == ["0.0", "5.2", "10.5", "12.6"]  # MB: each 5 MiB, then the end
    assert all(line.startswith("a0: ") and line.endswith("MB/s") for line in lines)


def test_progress_on_a_terminal_redraws_one_line():
    stream = io.StringIO()
    bar = models.download_bar("a0:", 3_000_000, stream=stream, tty=True, redraw=0)
    for _ in range(3):
        bar.update(1_000_000)
    bar.close()
    bar.close()  # idempotent
    text = stream.getvalue()
    assert text.count("\r") >= 4 and text.endswith("\n") and text.count("\n") == 1
    assert " 33%  1.0/3.0 MB" in text and "100%  3.0/3.0 MB" in text
