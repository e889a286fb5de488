from . import model_wrappers, optim_wrappers  # noqa: F401
