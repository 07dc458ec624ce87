"""Stand-in for the CoTracker package (tests only); see ../README.md."""

STAND_IN = True
