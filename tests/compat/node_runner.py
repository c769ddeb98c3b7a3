"""Running Node.js scripts with the ``openai`` npm package (pinned in node/package-lock.json;
``npm ci`` installs it when node_modules is missing): the scripts of ``node/``, and the guide's
samples written to a directory of their own (``guide_script``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

NODE_DIR = Path(__file__).with_name("node")
NODE_TIMEOUT = 300.0


@dataclass(frozen=True)
class NodeRun:
    stdout: str
    stderr: str
    returncode: int


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


def guide_script(code: str, directory: Path) -> Path:
    """``code`` as ``directory/sample.mjs``, beside a link to ``node/node_modules`` (so its
    ``import OpenAI from "openai"`` finds the pinned package)."""
    modules = directory / "node_modules"
    if not modules.exists():
        modules.symlink_to(NODE_DIR / "node_modules", target_is_directory=True)
    script = directory / "sample.mjs"
    script.write_text(code)
    return script


def node_process(node: str, script: str | Path, base_url: str, key: str, inputs: list[str] | None = None) -> NodeRun:
    """Run ``script`` (a name in ``node/``, or a path) with the base URL, key and scripted input
    in its environment (``MULTITURN_BASE_URL``, ``DASHSCOPE_API_KEY``, ``SCRIPTED_INPUT``)."""
    path = NODE_DIR / script if isinstance(script, str) else script
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MULTITURN_", "OPENAI_"))}
    env.update(MULTITURN_BASE_URL=base_url, DASHSCOPE_API_KEY=key, SCRIPTED_INPUT=json.dumps(inputs or []))
    result = subprocess.run(
        [node, path.name],
        cwd=path.parent,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=NODE_TIMEOUT,
        check=False,
    )
    return NodeRun(result.stdout, result.stderr, result.returncode)


def run_node(node: str, script: str | Path, base_url: str, key: str, inputs: list[str] | None = None) -> str:
    """``node_process``, which must end cleanly: exit 0 and nothing on stderr (the guide's
    scripts catch errors and print them there). Returns stdout."""
    run = node_process(node, script, base_url, key, inputs)
    assert run.returncode == 0 and run.stderr == "", f"{script} failed:\n{run.stdout}\n{run.stderr}"
    return run.stdout
