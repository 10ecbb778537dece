"""What a model costs to serve, against an earlier version of it: `python -m bench.decoder_cost REV`.

Issue 18 allows a better model at most 2x the decoder time per row of the one it replaces. This
loads `models/NAME/decoder.onnx` as committed at REV (e.g. the commit before the model changed)
and as it is in this checkout, with the service's own SessionOptions and one intra-op thread,
and times both in alternating rounds on one core at batch 1 and 64, so host drift favours
neither. Prints a markdown table: microseconds per row (median over rounds) and the ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

from bench.ceiling import REPO_ROOT, images_per_second
from bench.report import git_commit
from service.config import Settings
from service.registry import session_options

BATCHES = (1, 64)


def graph_at(revision: str, path: str, folder: Path) -> Path:
    """The file as committed at `revision`, written into `folder`."""
    found = subprocess.run(["git", "show", f"{revision}:{path}"], cwd=REPO_ROOT, capture_output=True)
    if found.returncode != 0:
        raise SystemExit(f"bench.decoder_cost: no {path} at {revision}: {found.stderr.decode().strip()}")
    data = found.stdout
    target = folder / f"{revision.replace('/', '_')}.onnx"
    target.write_bytes(data)
    return target


def session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), session_options(Settings(intra_op_threads=1)), ["CPUExecutionProvider"])


def compare(revision: str, model: str, rounds: int, seconds: float) -> list[dict]:
    path = f"models/{model}/decoder.onnx"
    with tempfile.TemporaryDirectory() as folder:
        graphs = {"then": session(graph_at(revision, path, Path(folder))), "now": session(REPO_ROOT / path)}
        latent_dim = graphs["now"].get_inputs()[0].shape[1]
        rng = np.random.default_rng(0)
        rows = []
        for size in BATCHES:
            batch = rng.standard_normal((size, latent_dim), dtype=np.float32)
            us = {name: [] for name in graphs}
            for _ in range(rounds):
                for name, graph in graphs.items():
                    us[name].append(1e6 / images_per_second(graph, "decoder", batch, seconds))
            then, now = statistics.median(us["then"]), statistics.median(us["now"])
            rows.append({"batch": size, "then_us": then, "now_us": now, "ratio": now / then})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("revision", help="the commit whose decoder.onnx is the baseline")
    parser.add_argument("--model", default="mnist", help="models/NAME (default mnist)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.0, help="timed seconds per graph, batch and round")
    parser.add_argument("--cpu", type=int, default=1 if (os.cpu_count() or 1) > 1 else None, help="pin to this core")
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    rows = compare(args.revision, args.model, args.rounds, args.seconds)
    print(
        f"models/{args.model}/decoder.onnx at {args.revision} vs this checkout ({git_commit(REPO_ROOT)}), "
        f"onnxruntime {ort.__version__}, 1 intra-op thread, median of {args.rounds} alternating rounds\n"
    )
    print(f"| batch | {args.revision} us/row | now us/row | now / {args.revision} |")
    print("|--:|--:|--:|--:|")
    for row in rows:
        print(f"| {row['batch']} | {row['then_us']:.1f} | {row['now_us']:.1f} | {row['ratio']:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
