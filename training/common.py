"""Helpers shared by the training scripts: data loading, scaling, calibration, metadata.

Training data is normal traffic in the common CSV format (`timestamp,<features...>,label`,
one file per entity), either read from `--data` or generated with `--synthetic` by the
service's own simulator (`dwcp-anomaly simulate ... csv`), so Rust and Python share one
generator. Rows labelled 1 are dropped; what remains is kept as contiguous normal segments
so that sliding windows never span a dropped row or a file boundary.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO_ROOT / "models"

#: Feature order of the profiles whose columns are known; other profiles take the header as is.
PROFILE_FEATURES = {
    "dwcp": [
        "bandwidth_mbps",
        "latency_ms",
        "packet_loss_pct",
        "jitter_ms",
        "cpu_pct",
        "memory_pct",
        "error_rate_pct",
    ],
}

#: Standard deviations below this are raised to it, so constant features do not divide by ~0.
STD_FLOOR = 1e-3
#: Number of calibration quantiles, at probabilities 0, 0.01, ..., 1.
N_QUANTILES = 101
#: Step of the `--synthetic` simulation.
SYNTHETIC_STEP = "10s"


def log(message: str) -> None:
    """Prints a progress line to stderr."""
    print(f"[train] {message}", file=sys.stderr, flush=True)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the options both training scripts take."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--synthetic",
        action="store_true",
        help="train on normal `dwcp-anomaly simulate` output (seeded with --seed)",
    )
    source.add_argument("--data", type=Path, help="CSV file or directory (searched recursively)")
    parser.add_argument(
        "--entities",
        type=int,
        default=30,
        help="--synthetic: simulated entities, each with its own random levels (default: 30)",
    )
    parser.add_argument(
        "--duration", default="8h", help="--synthetic: simulated time span (default: 8h)"
    )
    parser.add_argument("--profile", default="dwcp", help="feature profile name (default: dwcp)")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default: 42)")
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help="output directory (default: models/)"
    )
    parser.add_argument(
        "--target-fpr",
        type=float,
        default=0.01,
        help="false-positive rate on normal data that sets the threshold (default: 0.01)",
    )


@dataclass
class Dataset:
    """Normal training data: feature names and contiguous segments of rows (raw units)."""

    features: list[str]
    segments: list[np.ndarray]
    source: str

    def matrix(self) -> np.ndarray:
        """All normal rows stacked, shape [rows, features], float64."""
        return np.concatenate(self.segments, axis=0)


def load_dataset(args: argparse.Namespace) -> Dataset:
    """Loads the data `--synthetic` or `--data` names and checks it against `--profile`."""
    if args.synthetic:
        with tempfile.TemporaryDirectory(prefix="dwcp-train-") as tmp:
            command = simulate_csv(Path(tmp), args)
            dataset = read_csv_files(find_csv_files(Path(tmp)), source=" ".join(command))
    else:
        dataset = read_csv_files(find_csv_files(args.data), source=str(args.data))
    check_profile(dataset.features, args.profile)
    rows = sum(len(s) for s in dataset.segments)
    log(f"{rows} normal rows in {len(dataset.segments)} segments, features {dataset.features}")
    return dataset


def simulator_command() -> list[str]:
    """The `dwcp-anomaly` invocation: `$DWCP_ANOMALY_BIN`, the release build, or cargo run."""
    if os.environ.get("DWCP_ANOMALY_BIN"):
        return [os.environ["DWCP_ANOMALY_BIN"]]
    release = REPO_ROOT / "target" / "release" / "dwcp-anomaly"
    if release.is_file():
        return [str(release)]
    if shutil.which("cargo") is None:
        sys.exit("no dwcp-anomaly binary: set DWCP_ANOMALY_BIN or build with cargo")
    return ["cargo", "run", "--quiet", "--release", "--"]


def simulate_csv(out_dir: Path, options: argparse.Namespace) -> list[str]:
    """Writes normal synthetic traffic as CSV files into `out_dir`; returns the arguments used."""
    args = [
        "simulate",
        "--entities", str(options.entities),
        "--step", SYNTHETIC_STEP,
        "--seed", str(options.seed),
        "csv",
        "--duration", options.duration,
    ]  # fmt: skip
    command = simulator_command() + args + ["--out", str(out_dir)]
    log(f"running {' '.join(command)}")
    result = subprocess.run(command, cwd=REPO_ROOT, stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        sys.exit(f"simulate failed (exit {result.returncode}):\n{result.stderr[-4000:]}")
    return ["dwcp-anomaly"] + args


def find_csv_files(path: Path) -> list[Path]:
    """CSV files under `path`; a directory holding `train.csv` contributes only that file."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        sys.exit(f"--data {path}: no such file or directory")
    files = []
    for directory, _, names in os.walk(path):
        chosen = ["train.csv"] if "train.csv" in names else sorted(n for n in names if n.endswith(".csv"))
        files.extend(Path(directory) / n for n in chosen)
    if not files:
        sys.exit(f"--data {path}: no CSV files")
    return sorted(files)


def read_csv_files(paths: list[Path], source: str) -> Dataset:
    """Reads the files into one dataset; every file must have the same feature columns."""
    features: list[str] | None = None
    segments: list[np.ndarray] = []
    for path in paths:
        file_features, values, labels = read_csv(path)
        if features is None:
            features = file_features
        elif file_features != features:
            sys.exit(f"{path}: columns {file_features} differ from {features}")
        segments.extend(normal_segments(values, labels))
    if not segments:
        sys.exit(f"{source}: no normal rows")
    return Dataset(features=features, segments=segments, source=source)


def read_csv(path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """One common-format CSV file: (feature names, values [rows, features], labels [rows])."""
    with path.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header or header[0] != "timestamp" or header[-1] != "label" or len(header) < 3:
            sys.exit(f"{path}: header must be timestamp,<features...>,label")
        rows = [row[1:] for row in reader if row]
    table = np.array(rows, dtype=np.float64).reshape(len(rows), len(header) - 1)
    return header[1:-1], table[:, :-1], table[:, -1]


def normal_segments(values: np.ndarray, labels: np.ndarray) -> list[np.ndarray]:
    """Splits `values` into maximal runs of rows labelled 0."""
    normal = labels == 0
    edges = np.flatnonzero(np.diff(np.concatenate(([False], normal, [False])).astype(np.int8)))
    return [values[start:end] for start, end in zip(edges[::2], edges[1::2])]


def check_profile(features: list[str], profile: str) -> None:
    """Exits when a known profile's features differ from the data's columns."""
    expected = PROFILE_FEATURES.get(profile)
    if expected is not None and features != expected:
        sys.exit(f"profile {profile} expects columns {expected}, data has {features}")


@dataclass
class Scaler:
    """Per-feature standardisation: (x - mean) / std, std floored at STD_FLOOR."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> Scaler:
        """Fits on rows of raw feature vectors."""
        return cls(mean=x.mean(axis=0), std=np.maximum(x.std(axis=0), STD_FLOOR))

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Standardised float32 copy of `x` (any shape ending in the feature axis)."""
        return ((x - self.mean) / self.std).astype(np.float32)

    def to_json(self) -> dict:
        """The metadata `scaler` object."""
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}


def calibration(scores: np.ndarray, target_fpr: float) -> dict:
    """Calibration metadata from raw scores of normal data (higher = more anomalous)."""
    probabilities = np.linspace(0.0, 1.0, N_QUANTILES)
    threshold = float(np.quantile(scores, 1.0 - target_fpr))
    log(f"calibrated on {len(scores)} scores: threshold {threshold:.6g} at fpr {target_fpr}")
    return {
        "calibration_quantiles": np.quantile(scores, probabilities).tolist(),
        "threshold": threshold,
        "target_fpr": target_fpr,
    }


def data_hash(x: np.ndarray) -> str:
    """sha256 of the raw training matrix as C-order little-endian float64 bytes."""
    data = np.ascontiguousarray(x, dtype="<f8")
    return "sha256:" + hashlib.sha256(data.tobytes()).hexdigest()


def library_versions(packages: list[str]) -> dict:
    """Python and package versions for the metadata `versions` object."""
    return {"python": platform.python_version(), **{p: version(p) for p in packages}}


def utc_now() -> str:
    """Current UTC time, RFC 3339 with second precision."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_model_files(output: Path, name: str, onnx_bytes: bytes, metadata: dict) -> None:
    """Writes `<name>.onnx` and `<name>.json` (metadata plus `created`) into `output`."""
    output.mkdir(parents=True, exist_ok=True)
    (output / f"{name}.onnx").write_bytes(onnx_bytes)
    metadata = {**metadata, "created": utc_now()}
    (output / f"{name}.json").write_text(json.dumps(metadata, indent=2) + "\n")
    log(f"wrote {output / name}.onnx ({len(onnx_bytes)} bytes) and {name}.json")
