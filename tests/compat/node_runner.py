"""Running the Node.js scripts of ``node/`` with the ``openai`` npm package (pinned in
node/package-lock.json; ``npm ci`` installs it when node_modules is missing)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

NODE_DIR = Path(__file__).with_name("node")
NODE_TIMEOUT = 300.0


def node_executable() -> str:
    """``node``, with the pinned ``openai`` package installed in ``node/``."""
    exe = shutil.which("node")
    if exe is None:
        pytest.skip("node is not installed: the guide's Node.js examples cannot run")
    if not (NODE_DIR / "node_modules" / "openai").is_dir():
        npm = shutil.which("npm")
        assert npm is not None, "node is installed but npm is not: cannot install the openai package"
        result = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=NODE_TIMEOUT,
            check=False,
        )
        assert result.returncode == 0, f"npm ci failed:\n{result.stdout}\n{result.stderr}"
    return exe


def run_node(node: str, script: str, base_url: str, key: str, inputs: list[str] | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MULTITURN_", "OPENAI_"))}
    env.update(MULTITURN_BASE_URL=base_url, DASHSCOPE_API_KEY=key, SCRIPTED_INPUT=json.dumps(inputs or []))
    result = subprocess.run(
        [node, script],
        cwd=NODE_DIR,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=NODE_TIMEOUT,
        check=False,
    )
    # The guide's scripts catch errors and print them on stderr: a clean run leaves it empty.
    assert result.returncode == 0 and result.stderr == "", f"{script} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout
