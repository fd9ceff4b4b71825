"""The chat keeps the wire contract: `harness check` black-box over real TCP,
clause by clause. `harness` comes from the wheel (pip install
socketio-presence-harness): no Rust toolchain needed."""
import json
import shutil
import subprocess


def test_the_chat_keeps_the_contract(chat_url):
    harness = shutil.which("harness")
    assert harness, "harness is not on PATH: pip install socketio-presence-harness"
    done = subprocess.run(
        [harness, "check", chat_url, "--level", "core", "--format", "json"],
        capture_output=True, text=True, timeout=600)
    assert done.returncode in (0, 1), f"harness check could not run:\n{done.stderr}"
    report = json.loads(done.stdout)
    failed = [c for c in report["clauses"] if c["verdict"] == "FAIL"]
    lines = []
    for clause in failed:
        lines.append(f"{clause['clause']}: {clause['statement']}")
        for finding in clause["findings"][:2]:
            lines.append(f"    {finding['message']}")
    assert not failed, "\n".join(
        ["the chat breaks the contract:", *lines, f"again: {report['rerun']}"])
