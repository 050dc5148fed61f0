"""`streamstyle serve` and `streamstyle export-web` over plain HTTP: the page's headers, clear answers to bad
requests while it keeps serving, the token off loopback, and the static export's folder rules."""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import pytest

from .conftest import run_cli
from .web.browser import PageServer

pytestmark = [pytest.mark.slow, pytest.mark.network]

ISOLATION = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp"}


def fetch(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.fixture(scope="module")
def server():
    with PageServer() as running:
        yield running


def test_the_page_is_served_with_the_isolation_headers_and_bad_requests_get_clear_answers(server):
    assert urlsplit(server.url).hostname == "127.0.0.1"
    status, headers, body = fetch(server.url)
    assert status == 200 and b'<script type="module" src="page.js">' in body
    assert ISOLATION.items() <= headers.items()
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    for path, kind in [("streamstyle.js", "text/javascript"), ("models/site.json", "application/json"),
                       ("vendor/ort-wasm-simd-threaded.wasm", "application/wasm")]:  # fmt: skip
        status, headers, _ = fetch(server.origin + path, "HEAD")
        assert (status, headers["Content-Type"].split(";")[0]) == (200, kind), path
    status, headers, body = fetch(server.origin + "no/such/file.js")
    assert (status, body) == (404, b"not found: /no/such/file.js\n")
    assert ISOLATION.items() <= headers.items()
    assert fetch(server.origin, "POST")[0] == 405
    # A path that climbs out of the site is not found, whatever the client sends.
    connection = http.client.HTTPConnection(urlsplit(server.url).netloc, timeout=60)
    connection.request("GET", "/../../../../etc/passwd")
    assert connection.getresponse().status == 404
    connection.close()
    assert fetch(server.url)[0] == 200  # and it kept serving


def test_a_second_server_on_a_taken_port_says_so_in_one_line(server):
    port = urlsplit(server.url).port
    result = run_cli("serve", "--port", port)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"streamstyle: error: cannot listen on 127.0.0.1:{port}: Address already in use; choose another --port or "
        "--host"
    ]


def test_a_server_with_a_token_refuses_visitors_without_it():
    with PageServer("--token", "s3cret") as guarded:
        assert guarded.url.endswith("?token=s3cret")
        status, _, body = fetch(guarded.origin)
        assert (status, body) == (401, b"this server needs its token: open the URL it printed when it started\n")
        assert fetch(guarded.origin + "?token=wrong")[0] == 401
        status, headers, _ = fetch(guarded.url)
        assert status == 200
        cookie = headers["Set-Cookie"].split(";")[0]
        assert cookie == "streamstyle_token=s3cret"
        assert fetch(guarded.origin + "page.js", headers={"Cookie": cookie})[0] == 200  # the page's own requests


def test_off_loopback_a_token_is_made_up_when_none_is_given():
    with PageServer("--host", "0.0.0.0") as wide:
        token = urlsplit(wide.url).query.removeprefix("token=")
        assert len(token) >= 16
        port = urlsplit(wide.url).port
        assert fetch(f"http://127.0.0.1:{port}/")[0] == 401
        assert fetch(f"http://127.0.0.1:{port}/?token={token}")[0] == 200


def test_export_web_writes_the_whole_page_and_never_into_a_folder_that_holds_other_files(tmp_path):
    folder = tmp_path / "site"
    result = run_cli("export-web", folder, "--quiet")
    assert (result.returncode, result.stderr) == (0, "")
    written = {path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()}
    expected = {"index.html", "page.js", "page.css", "streamstyle.js", "_headers", "HOSTING.md", "models/site.json",
                "models/dumoulin26.onnx", "models/magenta-transformer.onnx", "models/magenta-predictor.onnx",
                "vendor/ort.wasm.min.mjs", "vendor/ort-wasm-simd-threaded.wasm",
                *(f"styles/{index:02d}.jpg" for index in range(26))}  # fmt: skip
    assert expected <= written
    headers = (folder / "_headers").read_text()
    assert all(f"{name}: {value}" in headers for name, value in ISOLATION.items())
    assert not [path for path in tmp_path.iterdir() if path.name.startswith(".")]  # no scratch left beside

    (folder / "index.html").write_text("a page of the user's own")
    result = run_cli("export-web", folder)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"streamstyle: error: {folder} is not empty; give a new or empty folder, or --overwrite to replace the page "
        "in it"
    ]
    assert (folder / "index.html").read_text() == "a page of the user's own"
    result = run_cli("export-web", folder, "--overwrite", "--quiet")
    assert result.returncode == 0, result.stderr
    assert '<script type="module" src="page.js">' in (folder / "index.html").read_text()

    a_file = tmp_path / "file.txt"
    a_file.write_text("keep me")
    result = run_cli("export-web", a_file)
    assert result.returncode == 2
    assert result.stderr.strip() == f"streamstyle: error: output {a_file} is a file; the page goes into a folder"
    assert a_file.read_text() == "keep me"
