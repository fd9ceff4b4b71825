"""The fixture a FastAPI team writes: their app under uvicorn on a free port,
for as long as the test session lasts."""
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def chat_url():
    port = free_port()
    # Short timers, so the check's heartbeat waits are short too.
    env = {**os.environ, "CHAT_PING_INTERVAL": "1", "CHAT_PING_TIMEOUT": "1",
           "CHAT_ACK_TIMEOUT": "1"}
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "chat_app:app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"],
        cwd=HERE, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{url}/health", timeout=1)
                break
            except OSError:
                if server.poll() is not None:
                    pytest.fail("the app exited before it answered /health")
                time.sleep(0.1)
        else:
            pytest.fail("the app did not answer /health within 10 s")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)
