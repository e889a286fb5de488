from . import (algorithms, backbones, data_preprocessors,  # noqa: F401
               decouplers, extractors, heads, losses, necks, utils)
