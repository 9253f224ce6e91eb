"""Dock widgets: Pretrain, Fine-tune, Predict, Evaluate and Export (one file each)."""
