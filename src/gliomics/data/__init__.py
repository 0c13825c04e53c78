"""Cohort data: the Kaggle ``kaggle_3m`` layout, the synthetic demo cohort,
the per-slice manifest and the patient-level splits."""
