"""The SDK version (also the distribution version, read by setuptools)."""

__version__ = "0.1.0"
