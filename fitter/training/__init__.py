"""Training fitter's own regressors on synthetic bodies (`fitter train ...`).

`fitter.training.lifter`: the keypoint lifter (`fitter.regressors.lifter`);
`fitter.training.nbf`: the NBF part-map regressor (`fitter.regressors.heads.NBFRegressor`).
The networks, their loaders and features stay in `fitter.regressors`; the bodies come from
`fitter.synthetic`.
"""
