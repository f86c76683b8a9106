"""Distributed backends for fitting many photos. Ray (optional extra `fitter[ray]`) is imported
only when a backend function runs, so `import fitter.distributed` works without it."""

from fitter.distributed.ray_backend import ImageFitter, fit_dataset, fit_paths_ray

__all__ = ["ImageFitter", "fit_dataset", "fit_paths_ray"]
