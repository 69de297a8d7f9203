"""Decoding speed and test BLEU of trained runs on Multi30k, measured as ``sandglass bench`` measures them.

Run: ``python benchmarks/decoding.py RUN [RUN ...] [--precision float32 bfloat16] [--beam 5]``.
Each run is loaded once and, in every precision asked for, scored on test_2016_flickr (from the large batch's
translations) and timed at batch 1 over the first ``--single-sentences`` sources and at ``--batch-size`` over all
of them: the median of ``--speed-runs`` timed passes after a warm-up batch, model load excluded. Greedy search only,
unless ``--beam N`` adds beam search (the Transformer's, or SandGlass's CTC prefix beam search). Use it to
measure the runs of a bench again, e.g. in a precision the bench did not decode in.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from sandglass.bench.config import DEFAULT_DATA_DIR, BenchConfig, Direction
from sandglass.bench.run import decoding_methods, load_bench_splits
from sandglass.bench.speed import measure_method
from sandglass.checkpoint import load_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (e.g. a bench's de-en/transformer)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR, help="the Multi30k folder")
    parser.add_argument("--precision", nargs="+", default=["float32", "bfloat16"], choices=["float32", "bfloat16"])
    parser.add_argument("--beam", type=int, default=1, help="also beam search of this size (1: greedy only)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--single-sentences", type=int, default=100)
    parser.add_argument("--speed-runs", type=int, default=3, help="timed passes per speed, median kept")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"| run | method | precision | BLEU | chrF | sent/s b1 | sent/s b{args.batch_size} |")
    print("|---|---|---|---:|---:|---:|---:|")
    config = BenchConfig(
        data_dir=args.data,
        beam=args.beam,
        ctc_beam=0 if args.beam == 1 else args.beam,
        batch_size=args.batch_size,
        single_sentences=args.single_sentences,
        speed_runs=args.speed_runs,
    )
    for run_dir in args.runs:
        run = load_run(run_dir)
        data = run.config.data
        test = load_bench_splits(config, Direction(data.src, data.tgt)).test
        for precision in args.precision:
            for method, beam in decoding_methods(run, config):
                result = measure_method(run, test, method, beam_size=beam, precision=precision, config=config)
                single, batched = (speed.sentences_per_second for speed in result.speeds)
                cells = [str(run_dir), method, precision, f"{result.scores.bleu:.2f}", f"{result.scores.chrf:.2f}"]
                print("| " + " | ".join([*cells, f"{single:,.1f}", f"{batched:,.1f}"]) + " |", flush=True)


if __name__ == "__main__":
    main()
