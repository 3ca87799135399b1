"""DeepDrummer Live: a critic that learns your taste in drum loops from their sound."""

__version__ = "0.1.0"
