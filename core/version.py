"""moxtrio's version, reported by `moxtrio version` and in User-Agent headers."""

VERSION = "0.1.0"
