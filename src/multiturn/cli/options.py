"""Options shared by several commands, and the settings they build."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..settings import Settings

Db = Annotated[
    str | None,
    typer.Option("--db", metavar="FILE|URL", help="Database: a SQLite file or a postgresql:// URL [env: MULTITURN_DB]"),
]
Model = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        metavar="NAME",
        help="A model alias (qwen-plus, or one of [models] in the config) or a catalogue model "
        "(`multiturn models list`) [env: MULTITURN_MODEL]",
    ),
]
ModelPath = Annotated[
    Path | None,
    typer.Option("--model-path", metavar="FILE", help="Use this local GGUF file as the model", dir_okay=False),
]


def settings(db: str | None = None, model: str | None = None, model_path: Path | None = None) -> Settings:
    return Settings.load(db=db, model=model, model_path=model_path)
