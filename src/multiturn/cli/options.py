"""Options shared by several commands, and the settings they build."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..settings import Settings

Db = Annotated[
    str | None, typer.Option("--db", help="Database: a SQLite file or a postgresql:// URL [env: MULTITURN_DB]")
]
Model = Annotated[str | None, typer.Option("--model", "-m", help="Model name from `multiturn models list`")]
ModelPath = Annotated[
    Path | None, typer.Option("--model-path", help="Use this local GGUF file as the model", dir_okay=False)
]


def settings(db: str | None = None, model: str | None = None, model_path: Path | None = None) -> Settings:
    return Settings.load(db=db, model=model, model_path=model_path)
