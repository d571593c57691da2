"""Prefect's temporary API server for one `yunying` command, in a session of its own.

Prefect's ephemeral mode starts the server in the CLI's process group, so a terminal's Ctrl-C
stopped the server first and the CLI then hung reconnecting to it, its runs left Running.
Started here, only the CLI gets the Ctrl-C: it marks its run, then stops the server, in order.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import httpx

from yunying.errors import YunyingError

_PR_SET_PDEATHSIG = 1
_started: list[subprocess.Popen[bytes]] = []


def start_temporary_server() -> str | None:
    """Start the server and point Prefect at it (before Prefect reads its settings); None when
    Prefect is already set up in this process or an API URL is configured."""
    # Prefect reads PREFECT_API_URL once, at import: after that (tests, a host program) its
    # own ephemeral mode or test harness decides.
    if "prefect" in sys.modules or _configured_api_url():
        return None
    timeout = float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120"))
    # Its database lives in Prefect's home, which Prefect makes without parents (var/).
    Path(os.environ.get("PREFECT_HOME", "~/.prefect")).expanduser().mkdir(
        parents=True, exist_ok=True
    )
    process, port = _launch()
    _started.append(process)
    atexit.register(stop_servers)  # registered before Prefect's: runs after its flushes
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + timeout
    with httpx.Client() as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise YunyingError(
                    f"Prefect's temporary server exited with code {process.returncode} "
                    "while starting"
                )
            try:
                if client.get(f"{url}/health").status_code == 200:
                    os.environ["PREFECT_API_URL"] = url
                    return url
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    stop_servers()
    raise YunyingError(f"Prefect's temporary server did not start within {timeout:.0f} s")


def _configured_api_url() -> bool:
    if os.environ.get("PREFECT_API_URL"):
        return True
    profiles = Path(os.environ.get("PREFECT_HOME", "~/.prefect")).expanduser() / "profiles.toml"
    try:
        data = tomllib.loads(profiles.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return False
    active = os.environ.get("PREFECT_PROFILE") or data.get("active", "ephemeral")
    return bool(data.get("profiles", {}).get(active, {}).get("PREFECT_API_URL"))


def _launch() -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    # As Prefect's own ephemeral server: API only, no UI.
    env = {
        **os.environ,
        "PREFECT_UI_ENABLED": "0",
        "PREFECT__SERVER_EPHEMERAL": "1",
        "PREFECT__SERVER_FINAL": "1",
    }
    command = [sys.executable, "-m", "uvicorn", "--factory"]
    command += ["prefect.server.api.server:create_app", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--log-level", "error", "--lifespan", "on"]
    process = subprocess.Popen(
        command, env=env, start_new_session=True, preexec_fn=_die_with_parent
    )
    return process, port


def _die_with_parent() -> None:
    # Out of our process group, a SIGKILLed CLI would leave the server running.
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def owns_a_server() -> bool:
    """Whether this process started a server: it is the `yunying` command, not a host."""
    return bool(_started)


def stop_servers() -> None:
    while _started:
        process = _started.pop()
        process.terminate()
        try:
            process.wait(timeout=5)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):  # a Ctrl-C while exiting
            process.kill()
            process.wait()
