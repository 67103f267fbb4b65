"""mtls-audit: does every endpoint really enforce mutual TLS?"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mtls-audit")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
