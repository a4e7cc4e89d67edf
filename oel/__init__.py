"""Online experiential learning: the shared configuration, errors and the `oel` command line."""

import os

# Offline by design: never reach for a model hub, never send telemetry, keep library chatter down.
for _key, _value in {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False",
                     "TOKENIZERS_PARALLELISM": "false", "TRANSFORMERS_VERBOSITY": "error",
                     "HF_HUB_DISABLE_PROGRESS_BARS": "1"}.items():
    os.environ.setdefault(_key, _value)

from oel.config import OELConfig  # noqa: E402
from oel.errors import OELError  # noqa: E402

__all__ = ["OELConfig", "OELError"]
