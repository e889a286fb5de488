from . import (algorithms, backbones, data_preprocessors,  # noqa: F401
               extractors, heads, losses, necks)
