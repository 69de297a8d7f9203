"""Search over model outputs: autoregressive greedy/beam search and CTC decoding."""

from sandglass.decoding.autoregressive import Hypothesis, SearchResult, beam_search, greedy_search
from sandglass.decoding.ctc import ctc_collapse, ctc_greedy_decode, ctc_prefix_beam_search

__all__ = [
    "Hypothesis",
    "SearchResult",
    "beam_search",
    "ctc_collapse",
    "ctc_greedy_decode",
    "ctc_prefix_beam_search",
    "greedy_search",
]
