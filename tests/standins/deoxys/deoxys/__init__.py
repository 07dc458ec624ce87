"""Test stand-in for UT Austin's deoxys (see ../README.md). Not the real library."""

import os

config_root = os.path.join(os.path.dirname(__file__), "../config")
ROOT_PATH = os.path.dirname(__file__)
__version__ = "0.1.0"
STANDIN = True
