"""The package's version, importable by any module without importing the package's app."""

__version__ = "0.1.0.dev0"
