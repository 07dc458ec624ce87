from .franka_interface import FrankaInterface

__all__ = ["FrankaInterface"]
