"""Trains tiny models on a small CSV dataset and checks the exported ONNX files and metadata.

The dataset is written by the test in the common CSV format, so no Rust binary is needed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
from sklearn.ensemble import IsolationForest

TRAINING_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TRAINING_DIR))

import common  # noqa: E402

FEATURES = ["load", "latency", "errors"]
ROWS = 800
SEED = 7
WINDOW = 8
METADATA_FIELDS = [
    "name", "kind", "profile", "features", "scaler", "input_name", "output_name", "input_shape",
    "output_shape", "dtype", "score", "calibration_quantiles", "threshold", "target_fpr",
    "training", "versions", "created",
]  # fmt: skip
#: Ops tract optimises in an LSTM graph (no Expand, Tile, Loop or Scan).
TRACT_LSTM_OPS = {
    "LSTM", "Transpose", "Squeeze", "Unsqueeze", "Reshape", "Slice", "Gather", "Concat", "Shape",
    "Constant", "ConstantOfShape", "MatMul", "Gemm", "Add",
}  # fmt: skip
TRAINING_FIELDS = ["rows", "data_hash", "source", "seed", "seconds"]


def entity_values(rng: np.random.Generator) -> np.ndarray:
    """Normal traffic of one entity: a daily-like cycle, a correlated metric and a flat one."""
    t = np.arange(ROWS)
    load = 50 + 10 * np.sin(2 * np.pi * t / 100) + rng.normal(0, 1, ROWS)
    latency = 20 + 0.5 * load + rng.normal(0, 0.5, ROWS)
    errors = 0.1 + rng.normal(0, 0.01, ROWS)
    return np.column_stack([load, latency, errors])


def write_csv(path: Path, values: np.ndarray, labels: np.ndarray, features=FEATURES) -> None:
    """Writes one file in the common format (`timestamp,<features...>,label`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [",".join(["timestamp", *features, "label"])]
    for i, (row, label) in enumerate(zip(values, labels)):
        stamp = f"2024-01-01T{i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z"
        lines.append(",".join([stamp, *(f"{v:.6f}" for v in row), str(int(label))]))
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """Two entities; one has a labelled anomaly and a `test.csv` that must be ignored."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(SEED)
    first = entity_values(rng)
    labels = np.zeros(ROWS)
    first[400:410] += 1000.0
    labels[400:410] = 1
    write_csv(root / "e1" / "train.csv", first, labels)
    write_csv(root / "e1" / "test.csv", np.full((5, 4), 1e6), np.ones(5), FEATURES + ["extra"])
    write_csv(root / "e2.csv", entity_values(rng), np.zeros(ROWS))
    return root


def train(script: str, data: Path, output: Path, *extra: str) -> dict:
    """Runs a training script on `data`; returns the metadata it wrote."""
    command = [sys.executable, str(TRAINING_DIR / script), "--data", str(data), "--profile", "test"]
    subprocess.run(command + ["--seed", str(SEED), "--output", str(output), *extra], check=True)
    name = script.removeprefix("train_").removesuffix(".py")
    return json.loads((output / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def lstm(data_dir, tmp_path_factory):
    """(metadata, ONNX Runtime session, ONNX model) of a tiny LSTM autoencoder."""
    out = tmp_path_factory.mktemp("models")
    extra = ["--window", str(WINDOW), "--hidden", "8", "--epochs", "3"]
    meta = train("train_lstm_autoencoder.py", data_dir, out, *extra)
    path = out / "lstm_autoencoder.onnx"
    return meta, onnxruntime.InferenceSession(str(path)), onnx.load(path)


@pytest.fixture(scope="module")
def forest(data_dir, tmp_path_factory):
    """(metadata, ONNX Runtime session) of an isolation forest."""
    out = tmp_path_factory.mktemp("models")
    meta = train("train_isolation_forest.py", data_dir, out)
    return meta, onnxruntime.InferenceSession(str(out / "isolation_forest.onnx"))


def normal_rows(data_dir: Path) -> np.ndarray:
    """The rows the scripts train on, read the same way they read them."""
    return common.read_csv_files(common.find_csv_files(data_dir), source="test").matrix()


def standardise(meta: dict, x: np.ndarray) -> np.ndarray:
    """Applies the metadata scaler, as a loader would."""
    scaler = meta["scaler"]
    return ((x - np.array(scaler["mean"])) / np.array(scaler["std"])).astype(np.float32)


def lstm_score(meta: dict, session, windows: np.ndarray) -> np.ndarray:
    """Raw LSTM score of standardised windows: mean squared reconstruction error."""
    (out,) = session.run([meta["output_name"]], {meta["input_name"]: windows})
    return ((out - windows) ** 2).mean(axis=(1, 2))


def test_reads_train_csv_only_and_drops_labelled_rows(data_dir):
    files = common.find_csv_files(data_dir)
    assert [f.relative_to(data_dir).as_posix() for f in files] == ["e1/train.csv", "e2.csv"]
    dataset = common.read_csv_files(files, source="test")
    assert dataset.features == FEATURES
    assert [len(s) for s in dataset.segments] == [400, 390, ROWS]


@pytest.mark.parametrize("model", ["lstm", "forest"])
def test_metadata_has_every_field(model, request, data_dir):
    meta = request.getfixturevalue(model)[0]
    assert set(METADATA_FIELDS) <= meta.keys()
    assert set(TRAINING_FIELDS) <= meta["training"].keys()
    assert {"python", "onnx"} <= meta["versions"].keys()
    assert meta["features"] == FEATURES and meta["profile"] == "test"
    assert len(meta["scaler"]["mean"]) == len(meta["scaler"]["std"]) == len(FEATURES)
    assert meta["training"]["rows"] == 2 * ROWS - 10
    assert meta["training"]["data_hash"] == common.data_hash(normal_rows(data_dir))
    quantiles = meta["calibration_quantiles"]
    assert len(quantiles) == common.N_QUANTILES and quantiles == sorted(quantiles)
    assert quantiles[0] <= meta["threshold"] <= quantiles[-1]
    assert meta["target_fpr"] == 0.01


def test_lstm_output_shape_equals_input_shape(lstm):
    meta, session, _ = lstm
    assert meta["window"] == WINDOW
    for batch in (1, 5):
        x = np.zeros((batch, WINDOW, len(FEATURES)), dtype=np.float32)
        (out,) = session.run([meta["output_name"]], {meta["input_name"]: x})
        assert out.shape == x.shape and out.dtype == np.float32


def test_lstm_graph_uses_only_ops_tract_optimises(lstm):
    graph = lstm[2].graph
    assert {node.op_type for node in graph.node} <= TRACT_LSTM_OPS


def test_lstm_scores_anomalous_window_above_threshold(lstm, data_dir):
    meta, session, _ = lstm
    normal = standardise(meta, normal_rows(data_dir)[:WINDOW])[None]
    anomalous = normal.copy()
    anomalous[0, -3:, 1] += 8.0
    normal_score, anomalous_score = lstm_score(meta, session, np.concatenate([normal, anomalous]))
    assert anomalous_score > meta["threshold"] > 0
    assert anomalous_score > normal_score


def test_forest_onnx_matches_scikit_learn(forest, data_dir):
    meta, session = forest
    x = standardise(meta, normal_rows(data_dir))
    reference = IsolationForest(n_estimators=100, max_samples=256, random_state=SEED).fit(x)
    (out,) = session.run([meta["output_name"]], {meta["input_name"]: x})
    assert out.shape == (len(x), 1)
    np.testing.assert_allclose(out[:, 0], reference.score_samples(x), atol=1e-5)


def test_forest_scores_anomalous_vector_above_threshold(forest):
    meta, session = forest
    x = np.full((1, len(FEATURES)), 6.0, dtype=np.float32)
    (out,) = session.run([meta["output_name"]], {meta["input_name"]: x})
    assert -out[0, 0] > meta["threshold"]
