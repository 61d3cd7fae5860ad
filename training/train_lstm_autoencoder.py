#!/usr/bin/env python3
"""Trains an LSTM autoencoder on windows of normal vectors and exports it to ONNX.

The model reconstructs a window of standardised feature vectors; the raw anomaly score of a
window is its mean squared reconstruction error. Writes `lstm_autoencoder.onnx` and
`lstm_autoencoder.json` (see training/README.md for the metadata).

    python3 training/train_lstm_autoencoder.py --synthetic --seed 42
"""

from __future__ import annotations

import argparse
import io
import time

import numpy as np
import onnxruntime
import torch
from torch import nn

import common

NAME = "lstm_autoencoder"
INPUT_NAME = "input"
OUTPUT_NAME = "output"
VALIDATION_FRACTION = 0.2
BATCH_SIZE = 128
LEARNING_RATE = 1e-3
PATIENCE = 5


class LstmAutoencoder(nn.Module):
    """Encoder LSTM, whose final (h, c) seeds a decoder LSTM, and a linear output layer.

    The decoder gets no information from its input: its input weights are fixed at zero,
    which is the same as feeding it zeros but needs no zeros tensor shaped like the batch in
    the exported graph. Everything it reconstructs passes through the encoder's state. (A
    latent vector repeated over time would export as Expand, which tract cannot optimise.)
    """

    def __init__(self, n_features: int, hidden: int):
        super().__init__()
        self.encoder = nn.LSTM(n_features, hidden, batch_first=True)
        self.decoder = nn.LSTM(n_features, hidden, batch_first=True)
        nn.init.zeros_(self.decoder.weight_ih_l0)
        self.decoder.weight_ih_l0.requires_grad_(False)
        self.head = nn.Linear(hidden, n_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction of `x` [batch, window, features], same shape."""
        _, state = self.encoder(x)
        decoded, _ = self.decoder(x, state)
        return self.head(decoded)


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common.add_common_arguments(parser)
    parser.add_argument("--window", type=int, default=32, help="window length (default: 32)")
    parser.add_argument("--hidden", type=int, default=32, help="LSTM state size (default: 32)")
    parser.add_argument("--epochs", type=int, default=30, help="maximum epochs (default: 30)")
    return parser.parse_args()


def windows(segments: list[np.ndarray], length: int) -> np.ndarray:
    """Every sliding window (stride 1) inside each segment: [n, length, features] float32."""
    parts = [
        np.lib.stride_tricks.sliding_window_view(s, length, axis=0).transpose(0, 2, 1)
        for s in segments
        if len(s) >= length
    ]
    if not parts:
        raise SystemExit(f"no normal segment holds a window of {length} rows")
    return np.concatenate(parts).astype(np.float32)


def split_segments(segments: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Chronological split of each segment: the last VALIDATION_FRACTION goes to validation."""
    cuts = [int(round(len(s) * (1 - VALIDATION_FRACTION))) for s in segments]
    return [s[:c] for s, c in zip(segments, cuts)], [s[c:] for s, c in zip(segments, cuts)]


def window_scores(model: nn.Module, x: np.ndarray) -> np.ndarray:
    """Mean squared reconstruction error of each window (the raw anomaly score)."""
    model.eval()
    with torch.no_grad():
        scores = [
            ((model(batch) - batch) ** 2).mean(dim=(1, 2))
            for batch in torch.from_numpy(x).split(1024)
        ]
    return torch.cat(scores).numpy().astype(np.float64)


def train_epoch(model: nn.Module, optimiser: torch.optim.Optimizer, x: np.ndarray, rng) -> float:
    """One pass over shuffled training windows; returns the mean training loss."""
    model.train()
    order = torch.from_numpy(rng.permutation(len(x)))
    data = torch.from_numpy(x)
    total = 0.0
    for idx in order.split(BATCH_SIZE):
        batch = data[idx]
        loss = ((model(batch) - batch) ** 2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        total += loss.item() * len(idx)
    return total / len(x)


def fit(model: nn.Module, train: np.ndarray, val: np.ndarray, args) -> dict:
    """Trains with early stopping on the validation loss; leaves the best weights in `model`."""
    rng = np.random.default_rng(args.seed)
    optimiser = torch.optim.Adam((p for p in model.parameters() if p.requires_grad), LEARNING_RATE)
    best = {"loss": float("inf"), "epoch": 0, "state": None}
    epochs_run = 0
    for epoch in range(1, args.epochs + 1):
        epochs_run = epoch
        train_loss = train_epoch(model, optimiser, train, rng)
        val_loss = float(window_scores(model, val).mean())
        common.log(f"epoch {epoch}: train loss {train_loss:.5f}, validation loss {val_loss:.5f}")
        if val_loss < best["loss"]:
            state = {k: v.clone() for k, v in model.state_dict().items()}
            best = {"loss": val_loss, "epoch": epoch, "state": state}
        elif epoch - best["epoch"] >= PATIENCE:
            common.log(f"early stop: no improvement since epoch {best['epoch']}")
            break
    model.load_state_dict(best["state"])
    return {"epochs": epochs_run, "best_epoch": best["epoch"], "validation_loss": best["loss"]}


def export_onnx(model: nn.Module, example: np.ndarray) -> bytes:
    """ONNX (opset 17, batch dimension dynamic) of the model, checked against PyTorch."""
    model.eval()
    buffer = io.BytesIO()
    torch.onnx.export(
        model,
        (torch.from_numpy(example),),
        buffer,
        opset_version=17,
        dynamo=False,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
    )
    onnx_bytes = buffer.getvalue()
    session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    (got,) = session.run([OUTPUT_NAME], {INPUT_NAME: example})
    with torch.no_grad():
        want = model(torch.from_numpy(example)).numpy()
    common.log(f"ONNX Runtime vs PyTorch: max |diff| {np.abs(got - want).max():.2e}")
    return onnx_bytes


def main() -> None:
    """Loads data, trains, calibrates on validation windows and writes the model files."""
    args = parse_args()
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    dataset = common.load_dataset(args)
    raw = dataset.matrix()
    scaler = common.Scaler.fit(raw)
    train_segments, val_segments = split_segments([scaler.transform(s) for s in dataset.segments])
    train, val = windows(train_segments, args.window), windows(val_segments, args.window)
    common.log(f"{len(train)} training and {len(val)} validation windows of {args.window}")

    model = LstmAutoencoder(len(dataset.features), args.hidden)
    started = time.monotonic()
    history = fit(model, train, val, args)
    seconds = round(time.monotonic() - started, 1)
    common.log(f"trained in {seconds} s")
    onnx_bytes = export_onnx(model, val[:5])

    metadata = {
        "name": NAME,
        "kind": "lstm_autoencoder",
        "profile": args.profile,
        "features": dataset.features,
        "scaler": scaler.to_json(),
        "window": args.window,
        "input_name": INPUT_NAME,
        "output_name": OUTPUT_NAME,
        "input_shape": ["batch", args.window, len(dataset.features)],
        "output_shape": ["batch", args.window, len(dataset.features)],
        "dtype": "float32",
        "score": "mean over the window's time steps and features of (output - input)^2, "
        "input = scaler-standardised vectors, oldest first; higher is more anomalous",
        **common.calibration(window_scores(model, val), args.target_fpr),
        "training": {
            "rows": len(raw),
            "data_hash": common.data_hash(raw),
            "source": dataset.source,
            "seed": args.seed,
            **history,
            "max_epochs": args.epochs,
            "hidden": args.hidden,
            "batch_size": BATCH_SIZE,
            "learning_rate": LEARNING_RATE,
            "train_windows": len(train),
            "validation_windows": len(val),
            "validation_fraction": VALIDATION_FRACTION,
            "seconds": seconds,
        },
        "versions": common.library_versions(["torch", "numpy", "onnx", "onnxruntime"]),
    }
    common.write_model_files(args.output, NAME, onnx_bytes, metadata)


if __name__ == "__main__":
    main()
