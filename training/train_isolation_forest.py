#!/usr/bin/env python3
"""Trains a scikit-learn isolation forest on normal vectors and exports it to ONNX.

The forest sees single standardised feature vectors; the raw anomaly score is
`-score_samples` (higher is more anomalous). Writes `isolation_forest.onnx` and
`isolation_forest.json` (see training/README.md for the metadata).

    python3 training/train_isolation_forest.py --synthetic --seed 42
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import onnxruntime
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.ensemble import IsolationForest

import common

NAME = "isolation_forest"
INPUT_NAME = "input"
OUTPUT_NAME = "score_samples"
N_ESTIMATORS = 100
MAX_SAMPLES = 256


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common.add_common_arguments(parser)
    return parser.parse_args()


def export_onnx(forest: IsolationForest, sample: np.ndarray) -> bytes:
    """ONNX of the forest with a `score_samples` output, checked against scikit-learn."""
    onnx_model = to_onnx(
        forest,
        initial_types=[(INPUT_NAME, FloatTensorType([None, sample.shape[1]]))],
        target_opset={"": 17, "ai.onnx.ml": 3},
        options={id(forest): {"score_samples": True}},
    )
    ordered = sorted(onnx_model.opset_import, key=lambda o: o.domain)  # set order varies by run
    del onnx_model.opset_import[:]
    onnx_model.opset_import.extend(ordered)
    onnx_bytes = onnx_model.SerializeToString()
    session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    (got,) = session.run([OUTPUT_NAME], {INPUT_NAME: sample})
    diff = np.abs(got.ravel() - forest.score_samples(sample)).max()
    common.log(f"ONNX Runtime vs scikit-learn score_samples: max |diff| {diff:.2e}")
    return onnx_bytes


def main() -> None:
    """Loads data, trains, calibrates on the training vectors and writes the model files."""
    args = parse_args()
    dataset = common.load_dataset(args)
    raw = dataset.matrix()
    scaler = common.Scaler.fit(raw)
    x = scaler.transform(raw)

    started = time.monotonic()
    forest = IsolationForest(
        n_estimators=N_ESTIMATORS, max_samples=MAX_SAMPLES, random_state=args.seed
    ).fit(x)
    seconds = round(time.monotonic() - started, 1)
    common.log(f"trained {N_ESTIMATORS} trees in {seconds} s")
    onnx_bytes = export_onnx(forest, x[:1000])

    metadata = {
        "name": NAME,
        "kind": "isolation_forest",
        "profile": args.profile,
        "features": dataset.features,
        "scaler": scaler.to_json(),
        "input_name": INPUT_NAME,
        "output_name": OUTPUT_NAME,
        "input_shape": ["batch", len(dataset.features)],
        "output_shape": ["batch", 1],
        "dtype": "float32",
        "score": "-score_samples: minus the output named output_name (scikit-learn "
        "score_samples, in [-1, 0]) for a scaler-standardised vector; higher is more anomalous",
        **common.calibration(-forest.score_samples(x), args.target_fpr),
        "training": {
            "rows": len(raw),
            "data_hash": common.data_hash(raw),
            "source": dataset.source,
            "seed": args.seed,
            "n_estimators": N_ESTIMATORS,
            "max_samples": int(forest.max_samples_),
            "offset": float(forest.offset_),
            "seconds": seconds,
        },
        "versions": common.library_versions(["scikit-learn", "skl2onnx", "numpy", "onnx", "onnxruntime"]),
    }
    common.write_model_files(args.output, NAME, onnx_bytes, metadata)


if __name__ == "__main__":
    main()
