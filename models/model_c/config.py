"""ModelC's own settings: the delay of each piece, and where its trained table is."""

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

BUNDLED_TABLE = Path(__file__).with_name("model_c.json")
"""Where Bazel's genrule puts the trained table (beside this module in the runfiles)."""

CORPUS = Path(__file__).with_name("corpus.txt")
"""The text the table is trained on; a dev run outside Bazel trains on it at start-up."""


class ModelCSettings(BaseSettings):
    """``CHUNK_DELAY_MS``: milliseconds the model waits before each word (shapes streams for
    tests and benchmarks); ``MODEL_C_PATH``: the table (unset: the bundled one, else trained
    from ``corpus.txt`` at start-up)."""

    model_config = SettingsConfigDict(extra="ignore")

    chunk_delay_ms: float = Field(default=0.0, ge=0, le=60_000)
    model_c_path: Path | None = None
