"""Stand-in of detectron2 (tests only): only what HaMeR's demo uses."""
