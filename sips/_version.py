"""The version of sips, read by the package, the Hub user agent and the packaging."""

__version__ = "0.1.0"
