"""Runs HAProxy and nginx with the configurations of deploy/ (on free local ports,
upstreams pointed at a closed local port) and checks what they log for a request
that carries tokens in its URL: the token values never appear, the mask does.
Used by check_deploy.py; each function returns a summary or raises ValueError
with the problems.
"""

from __future__ import annotations

import re
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

SECRET = "eyJSECRETtoken"
# The token twice, in two spellings of the name: each one must be masked.
QUERY = f"access_token={SECRET}1&x=1&ACCESS_TOKEN={SECRET}2"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(port: int, process: subprocess.Popen, deadline_s: float = 10) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ValueError(f"exited with {process.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise ValueError(f"not listening on {port} after {deadline_s} s")


def get(url: str) -> None:
    try:
        urllib.request.urlopen(url, timeout=10).read()
    except urllib.error.HTTPError:
        pass  # no upstream answers: a 502 or 503 is logged all the same


def logged(command: list[str], port: int, path: str) -> str:
    """Starts the server, makes one request, stops it; returns all it wrote."""
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for(port, process)
            get(f"http://127.0.0.1:{port}{path}")
            time.sleep(0.5)  # the log line is written once the request ends
        finally:
            process.terminate()
            process.wait(timeout=10)
        out.seek(0)
        return out.read().decode(errors="replace")


def verdict(text: str, what: str) -> str:
    problems = []
    if SECRET in text:
        problems.append(f"{what} logged the token: {text.strip()[-400:]}")
    if "REDACTED" not in text:
        problems.append(f"{what} logged no masked request: {text.strip()[-400:]}")
    if problems:
        raise ValueError("; ".join(problems))
    return f"{what}: ?access_token= masked"


def check_haproxy(binary: str, config: Path) -> str:
    port, stats = free_port(), free_port()
    text = config.read_text()
    text = text.replace("bind :8082", f"bind 127.0.0.1:{port}").replace("bind 127.0.0.1:8404", f"bind 127.0.0.1:{stats}")
    # Production's connection limits need more file descriptors than a test may open.
    text = re.sub(r"maxconn \d+", "maxconn 1000", text)
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "haproxy.cfg"
        copy.write_text(text)
        output = logged([binary, "-db", "-f", str(copy)], port, f"/ws?{QUERY}")
    return verdict(output, "haproxy")


def check_nginx(binary: str, config: Path) -> str:
    port, closed = free_port(), free_port()
    text = config.read_text()
    text = re.sub(r"(\bserver\s+)[A-Za-z0-9.-]+:(\d+)", rf"\g<1>127.0.0.1:{closed}", text)
    text = re.sub(r"listen 80 default_server;", f"listen 127.0.0.1:{port} default_server;", text)
    with tempfile.TemporaryDirectory() as scratch:
        text = text.replace("pid /run/nginx.pid;", f"pid {scratch}/nginx.pid;")
        copy = Path(scratch) / "nginx.conf"
        copy.write_text(text)
        command = [binary, "-c", str(copy), "-p", scratch, "-g", "daemon off;"]
        output = logged(command, port, f"/api/users?{QUERY}")
    return verdict(output, "nginx")
