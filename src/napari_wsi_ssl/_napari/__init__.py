"""The napari side: reader, writers, sample data and dock widgets (the only package importing Qt)."""
