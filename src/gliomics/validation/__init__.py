"""Great Expectations suites for the inputs (``data.csv``, slice manifest)
and, in later stages, for output tables."""
