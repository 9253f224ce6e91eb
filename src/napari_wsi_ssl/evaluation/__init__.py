"""Evaluation: metrics (plain numpy), reports with plots, and the label-efficiency study.

``metrics`` has no torch import; ``report`` and ``study`` load torch only when a model is run.
"""

from __future__ import annotations

from . import metrics

__all__ = ["metrics"]
