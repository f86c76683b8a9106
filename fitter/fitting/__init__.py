"""SMPLify-style batched fitting of a body model to 2D keypoints (and masks, 3D landmarks).

* config.py      FitConfig and the presets
* problem.py     Problem: targets, weights and camera of a batch
* params.py      Params: the optimised variables
* losses.py      the objective's terms
* face.py        SMPL-X's jaw and expression: priors and the face points' weight
* silhouettes.py mask targets at a working resolution
* stages.py      the stage loop (Adam)
* fit.py         fit_keypoints: start, flips, stages, NaN retry, restarts, result

Units: residuals are rescaled per item to a 224 px person crop (SPIN's units) before the
Geman-McClure cost, so the published sigma (100) and prior weights apply at any image size.
"""

from fitter.fitting.config import PRESETS, FitConfig, fit_config, resolve_config
from fitter.fitting.fit import fit_keypoints, prior_mean_pose
from fitter.fitting.problem import FitTargets

__all__ = ["FitConfig", "PRESETS", "fit_config", "resolve_config", "fit_keypoints", "FitTargets", "prior_mean_pose"]
