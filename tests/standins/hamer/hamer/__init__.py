"""Stand-in of the HaMeR package (tests only); see ../README.md."""
