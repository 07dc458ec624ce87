"""Stand-in of deoxys.utils.config_utils (documented API only)."""

from __future__ import annotations

import os

import numpy as np

from deoxys import config_root
from deoxys.utils.yaml_config import AttrDict, YamlConfig

_FILES = {"OSC_POSE": "osc-pose-controller.yml", "OSC_POSITION": "osc-position-controller.yml",
          "OSC_YAW": "osc-yaw-controller.yml", "JOINT_IMPEDANCE": "joint-impedance-controller.yml",
          "JOINT_POSITION": "joint-position-controller.yml",
          "CARTESIAN_VELOCITY": "cartesian-velocity-controller.yml"}


def get_default_controller_config(controller_type: str) -> AttrDict:
    """The default config of ``controller_type`` from ``config_root`` (only JOINT_IMPEDANCE ships here)."""
    cfg = YamlConfig(os.path.join(config_root, _FILES[controller_type])).as_easydict()
    return verify_controller_config(cfg)


def verify_controller_config(controller_cfg: dict, use_default: bool = True) -> dict:
    """Checks ``controller_type`` is present and fills the JOINT_IMPEDANCE defaults as upstream."""
    assert "controller_type" in controller_cfg, "The controller config must specify the controller type"
    missing = False
    if controller_cfg["controller_type"] == "JOINT_IMPEDANCE":
        if controller_cfg.get("traj_interpolator_cfg") is None:
            controller_cfg["traj_interpolator_cfg"] = {"traj_interpolator_type": "LINEAR_JOINT_POSITION",
                                                       "time_fraction": 0.3}
            missing = True
        if controller_cfg.get("joint_kp") is None:
            controller_cfg["joint_kp"] = [5.0, 5.0, 5.0, 5.0, 0.0, 0.0, 0.0]
            missing = True
        if controller_cfg.get("joint_kd") is None:
            controller_cfg["joint_kd"] = (2 * np.sqrt(controller_cfg["joint_kp"])).tolist()
            missing = True
    if missing and not use_default:
        raise ValueError
    return controller_cfg
