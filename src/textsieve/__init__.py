"""textsieve: filter video datasets by the share of their frames covered by text."""

__version__ = "0.1.0"
