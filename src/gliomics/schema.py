"""Column names that several stages share (no heavy imports here).

The features stage writes these columns and the association stage reads
them; keeping the list in one light module lets the association stage know
it without importing scikit-image and OpenCV.
"""

#: The 14 features of the Kota (2024) thesis, in its order, snake_case.
FEATURE_COLUMNS = (
    "angular_standard_deviation",
    "eccentricity",
    "bounding_ellipsoid_volume_ratio",
    "margin_fluctuation",
    "solidity",
    "extent",
    "equivalent_diameter",
    "perimeter",
    "convexity_defects",
    "aspect_ratio",
    "glcm_contrast",
    "glcm_correlation",
    "glcm_energy",
    "glcm_homogeneity",
)
