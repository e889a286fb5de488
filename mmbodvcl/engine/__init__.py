from . import hooks, model_wrappers, optim_wrappers  # noqa: F401
from .hypergradients import (DEFAULT_HYPERGRADIENT,  # noqa: F401
                             HYPERGRADIENTS, build_hypergradient)
