"""sandglass: convolutional sequence-to-sequence text models."""

from sandglass.summary import LayerRow, ModelSummary, summary

__version__ = "0.1.0"

__all__ = ["LayerRow", "ModelSummary", "summary", "__version__"]
