"""Evaluation: reports with plots, and the label-efficiency study.

The metrics themselves are :mod:`napari_wsi_ssl.metrics` (plain numpy, which training uses too);
``report`` and ``study`` load torch only when a model is run.
"""
