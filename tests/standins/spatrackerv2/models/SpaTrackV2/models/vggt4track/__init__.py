"""Stand-in package of the SpaTrackerV2 checkout layout (tests only); see tests/standins/spatrackerv2/README.md."""
