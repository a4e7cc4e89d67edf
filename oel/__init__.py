"""Online experiential learning: the shared configuration, errors and the `oel` command line."""

from oel.config import OELConfig
from oel.errors import OELError

__all__ = ["OELConfig", "OELError"]
