from . import (algorithms, backbones, data_preprocessors,  # noqa: F401
               decouplers, heads, losses, necks, utils)
