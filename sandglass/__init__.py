"""sandglass: convolutional sequence-to-sequence text models."""

__version__ = "0.1.0"
