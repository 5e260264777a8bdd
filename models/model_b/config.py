"""ModelB's own setting: where its trained model file is."""

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

BUNDLED_MODEL = Path(__file__).with_name("model_b.joblib")
"""Where Bazel's genrule puts the trained file (beside this module in the runfiles)."""

DEV_MODEL = Path("/tmp/conveyor/model_b.joblib")
"""Where a dev run outside Bazel trains the model when no file is bundled."""


class ModelBSettings(BaseSettings):
    """``MODEL_B_PATH``: the model file; unset means the bundled file, else a dev-trained one."""

    model_config = SettingsConfigDict(env_prefix="MODEL_B_", extra="ignore")

    path: Path | None = None
