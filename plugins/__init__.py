"""dream2flow built-in plugins."""

# importing d2f_core chooses MuJoCo's headless GL backend (d2f_core/gl.py) before any plugin can
# import MuJoCo, even when a plugin module is imported directly
from d2f_core.gl import configure_headless_gl

configure_headless_gl()
