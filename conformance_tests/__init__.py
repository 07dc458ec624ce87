"""d2f_conformance: the public conformance suite for dream2flow plugins."""
