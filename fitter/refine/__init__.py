"""Refinement of regressor predictions before fitting: Exemplar Fine-Tuning (EFT).

from fitter.refine import eft_refine, EFTConfig
"""

from fitter.refine.eft import EFTConfig, eft_refine

__all__ = ["EFTConfig", "eft_refine"]
