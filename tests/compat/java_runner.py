"""Running the Java programs of ``java/`` on Debian's OpenJDK.

The guide's Java samples use the DashScope Java SDK, which is not reachable here (no Maven
registry), so ``java/`` sends the same request bodies with the JDK's own
``java.net.http.HttpClient`` (``java/DashScopeHttp.java``) in its DEFAULT configuration: HTTP/2
preferred, which on ``http://`` offers an h2c upgrade on every request, body included
(test_h2c_upgrade.py pins that premise and the gateway's answer to it).

The sources are compiled once per session with ``javac -Xlint:all -Werror`` into a temporary
directory (the ``jdk`` fixture). A missing ``javac`` or ``java`` fails: the JDK is part of the
test machine.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

JAVA_DIR = Path(__file__).with_name("java")
JAVA_TIMEOUT = 300.0
HTTP_1_1_OK = "HTTP HTTP_1_1 200"  # DashScopeHttp prints "HTTP <version> <status>" per response


@dataclass(frozen=True)
class Jdk:
    java: str
    classes: Path


@dataclass(frozen=True)
class JavaRun:
    stdout: str
    stderr: str


def compile_java(classes: Path) -> Jdk:
    javac, java = shutil.which("javac"), shutil.which("java")
    if javac is None or java is None:
        pytest.fail("the JDK (javac and java) is not installed: the guide's Java examples cannot run")
    sources = sorted(str(p) for p in JAVA_DIR.glob("*.java"))
    result = subprocess.run(
        [javac, "-Xlint:all", "-Werror", "-d", str(classes), *sources],
        env=_java_env(),
        capture_output=True,
        text=True,
        timeout=JAVA_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, f"javac failed:\n{result.stdout}\n{result.stderr}"
    return Jdk(java, classes)


def _java_env(**more: str) -> dict[str, str]:
    # No JAVA_TOOL_OPTIONS and the like: the JVM announces them on stderr, which a clean run leaves empty.
    drop = ("MULTITURN_", "DASHSCOPE_", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(more)
    return env


def run_java(jdk: Jdk, main: str, base_url: str, key: str, stdin: str = "") -> JavaRun:
    """Run the class ``main`` with the base URL and key in its environment; it must exit 0 (the
    programs print what went wrong and exit 0, as the guide's do)."""
    result = subprocess.run(
        [jdk.java, "-cp", str(jdk.classes), main],
        env=_java_env(MULTITURN_BASE_URL=base_url, DASHSCOPE_API_KEY=key),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=JAVA_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, f"{main} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return JavaRun(result.stdout, result.stderr)


def statuses(out: str) -> list[str]:
    """The ``HTTP <version> <status>`` lines DashScopeHttp prints, one per response."""
    return [line for line in out.splitlines() if re.fullmatch(r"HTTP HTTP_\S+ \d{3}", line)]
