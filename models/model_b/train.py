"""Train ModelB's classifier on scikit-learn's bundled iris data and write it with joblib.

Usage: ``python -m models.model_b.train OUTPUT_PATH`` (Bazel runs it in a genrule).
"""

import argparse
import os
from pathlib import Path
from typing import Any

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

RANDOM_STATE = 0


def train() -> dict[str, Any]:
    """Fit the classifier and return the artifact: the pipeline and the class/feature names."""
    iris = load_iris()
    pipeline: Pipeline = make_pipeline(
        StandardScaler(), LogisticRegression(max_iter=1000, random_state=RANDOM_STATE)
    )
    pipeline.fit(iris.data, iris.target)
    return {
        "pipeline": pipeline,
        "class_names": [str(name) for name in iris.target_names],
        "feature_names": [str(name) for name in iris.feature_names],
    }


def write(path: Path) -> Path:
    """Train and write the artifact to ``path`` atomically (parent directories created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    joblib.dump(train(), partial)
    os.replace(partial, path)
    return path


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("output", type=Path, help="where to write the model file")
    args = parser.parse_args()
    write(args.output)


if __name__ == "__main__":
    main()
