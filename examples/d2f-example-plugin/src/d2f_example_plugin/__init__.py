"""d2f-example-plugin: a third-party dream2flow plugin package (a block-matching tracker).

Importing this package is cheap: the tracker's code lives in
:mod:`d2f_example_plugin.block_matching` and is imported by the factory only when the tracker
is built. The entry point (group ``dream2flow``) names :mod:`d2f_example_plugin.plugin`.
"""

__version__ = "0.1.0"
