"""Tests of gliomics.models (the segmentation model builders)."""
