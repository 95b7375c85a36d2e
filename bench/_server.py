"""Start and stop a real ``gunicorn crm.wsgi:application`` for the benchmarks, on 127.0.0.1 only.

The server runs in its own process group so that stopping it also stops its workers, even when the master is
killed with SIGKILL and cannot pass the signal on.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A port the kernel just handed out; nothing else on this machine is listening on it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_gunicorn(
    *, env: dict[str, str], port: int, log: Path, workers: int = 2, threads: int = 1
) -> subprocess.Popen[bytes]:
    """Start gunicorn in a new session (its own process group); its output goes to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "crm.wsgi:application",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(workers),
                "--threads",
                str(threads),
                # A request that takes this long is a hung benchmark, not a measurement.
                "--timeout",
                "60",
                "--graceful-timeout",
                "5",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_healthy(proc: subprocess.Popen[bytes], port: int, *, log: Path, timeout: float = 30.0) -> None:
    """Poll ``GET /healthz`` until it answers 200; raise with the log's tail if the server dies or hangs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {proc.returncode}:\n{tail(log)}")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass  # not listening yet
        finally:
            conn.close()
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer /healthz within {timeout:.0f} s:\n{tail(log)}")


def _group_alive(pgid: int) -> bool:
    """Whether a process of the group still runs. Zombies do not count: PID 1 here may never reap them."""
    proc_dir = Path("/proc")
    if not proc_dir.is_dir():  # not Linux: fall back to signal 0, which also sees zombies
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for entry in proc_dir.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited while we looked
        # "pid (comm) state ppid pgrp ...": comm may contain spaces and parentheses, so split after the last ')'.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def kill_group(proc: subprocess.Popen[bytes] | subprocess.Popen[str], *, timeout: float = 15.0) -> None:
    """SIGKILL the process group ``proc`` leads and wait until none of its processes runs any more."""
    pgid = proc.pid  # start_new_session=True: the child leads its own group
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=timeout)
    deadline = time.monotonic() + timeout
    while _group_alive(pgid):
        if time.monotonic() > deadline:
            raise RuntimeError(f"process group {pgid} still alive {timeout:.0f} s after SIGKILL")
        time.sleep(0.05)


def tail(log: Path, size: int = 3000) -> str:
    try:
        return log.read_text(errors="replace")[-size:]
    except OSError:
        return "(no log)"
