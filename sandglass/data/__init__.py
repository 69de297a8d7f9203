"""Parallel data for the translator: readers, Multi30k, synthetic tasks, and token-budget batching."""

from sandglass.data.batching import Batch, collate, iterate_batches, pad_sequences, token_budget_batches
from sandglass.data.corpus import DataError, DataSplits, ParallelCorpus, word_counts
from sandglass.data.folder import read_data_file, read_folder
from sandglass.data.loading import BUILT_IN, load_splits, read_source
from sandglass.data.multi30k import load_multi30k, load_multi30k_from_hub, multi30k_dir
from sandglass.data.readers import read_lines, read_parallel_text, read_table, read_text
from sandglass.data.records import corpus_from_dataset, read_records, read_saved_dataset
from sandglass.data.synthetic import TASKS, load_synthetic, synthetic_corpus

__all__ = [
    "BUILT_IN",
    "TASKS",
    "Batch",
    "DataError",
    "DataSplits",
    "ParallelCorpus",
    "collate",
    "corpus_from_dataset",
    "iterate_batches",
    "load_multi30k",
    "load_multi30k_from_hub",
    "load_splits",
    "load_synthetic",
    "multi30k_dir",
    "pad_sequences",
    "read_data_file",
    "read_folder",
    "read_lines",
    "read_parallel_text",
    "read_records",
    "read_saved_dataset",
    "read_source",
    "read_table",
    "read_text",
    "synthetic_corpus",
    "token_budget_batches",
    "word_counts",
]
