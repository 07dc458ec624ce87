"""Stand-in of deoxys.franka_interface.FrankaInterface (see ../../README.md): records every
``control()`` call and simulates the joint state (the robot reaches each commanded goal)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Union

import numpy as np

from deoxys.utils.config_utils import verify_controller_config
from deoxys.utils.yaml_config import YamlConfig

# deoxys' examples/joint_impedance_control.py reset pose (rad)
RESET_Q = (0.09162008114028396, -0.19826458111314524, -0.01990020486871322, -2.4732269941140346,
           -0.01307073642274261, 2.30396583422025, 0.8480939705504309)


@dataclass
class RobotState:
    q: list
    q_d: list = field(default_factory=lambda: [0.0] * 7)
    dq: list = field(default_factory=lambda: [0.0] * 7)


@dataclass
class GripperState:
    width: float


class FrankaInterface:
    initial_q: ClassVar[tuple] = RESET_Q
    publish_state: ClassVar[bool] = True
    clock: ClassVar[Callable[[], float]] = time.monotonic
    instances: ClassVar[list] = []

    def __init__(self, general_cfg_file: str = "config/local-host.yml", control_freq: float = 20.0,
                 state_freq: float = 100.0, control_timeout: float = 1.0, has_gripper: bool = True,
                 use_visualizer: bool = False, automatic_gripper_reset: bool = True) -> None:
        general_cfg = YamlConfig(general_cfg_file).as_easydict()
        self._name = general_cfg.PC.NAME
        self._ip = general_cfg.NUC.IP
        self._pub_port = general_cfg.NUC.SUB_PORT
        self._sub_port = general_cfg.NUC.PUB_PORT
        self._gripper_pub_port = general_cfg.NUC.GRIPPER_SUB_PORT
        self._gripper_sub_port = general_cfg.NUC.GRIPPER_PUB_PORT
        self.general_cfg_file = general_cfg_file
        self._control_freq = control_freq
        self._state_freq = state_freq
        self._control_timeout = control_timeout
        self.has_gripper = has_gripper
        self.use_visualizer = use_visualizer
        self.automatic_gripper_reset = automatic_gripper_reset
        self._state_buffer: list[RobotState] = []
        self._gripper_state_buffer: list[GripperState] = []
        if self.publish_state:
            self._state_buffer.append(RobotState(q=list(self.initial_q)))
            self._gripper_state_buffer.append(GripperState(width=0.08))
        self._last_controller_type = "Dummy"
        self.last_gripper_dim = -1
        self.last_gripper_action = 0
        self.calls: list[dict[str, Any]] = []
        self.closed = False
        FrankaInterface.instances.append(self)

    def control(self, controller_type: str, action: Union[np.ndarray, list], controller_cfg: dict = None,
                termination: bool = False) -> None:
        action = np.array(action)
        controller_cfg = verify_controller_config(controller_cfg, use_default=True)
        if controller_type not in ("JOINT_IMPEDANCE", "JOINT_POSITION"):
            raise NotImplementedError(f"stand-in: controller_type {controller_type!r} is not simulated")
        assert controller_cfg is not None
        assert len(action) == 7 + 1
        # what upstream would send: recorded once the message is built
        self.calls.append({"controller_type": controller_type, "action": action.copy(),
                           "controller_cfg": controller_cfg, "termination": termination,
                           "time": type(self).clock()})
        self._last_controller_type = controller_type
        goal = np.array(action[:7], dtype=np.float64)
        if controller_cfg.is_delta:
            goal = goal + (self.last_q if self.last_q is not None else 0.0)
        if self.publish_state:
            self._state_buffer.append(RobotState(q=goal.tolist(), q_d=goal.tolist()))
        if self.has_gripper:
            self.gripper_control(action[self.last_gripper_dim])

    def gripper_control(self, action: float) -> None:
        width = 0.08 * abs(float(action)) if action < 0.0 else 0.0
        if self.publish_state:
            self._gripper_state_buffer.append(GripperState(width=width))
        self.last_gripper_action = action

    def close(self) -> None:
        self.closed = True

    def reset(self) -> None:
        self._state_buffer = []
        self._gripper_state_buffer = []
        self.last_gripper_action = 0

    def check_nonzero_configuration(self) -> bool:
        return bool(np.max(np.abs(np.array(self._state_buffer[-1].q))) >= 1e-3)

    @property
    def received_states(self) -> bool:
        return len(self._state_buffer) > 0

    @property
    def last_q(self):
        if self.state_buffer_size == 0:
            return None
        return np.array(self._state_buffer[-1].q)

    @property
    def last_q_d(self):
        if self.state_buffer_size == 0:
            return None
        return np.array(self._state_buffer[-1].q_d)

    @property
    def last_gripper_q(self):
        if self.gripper_state_buffer_size == 0:
            return None
        return np.array(self._gripper_state_buffer[-1].width)

    @property
    def state_buffer_size(self) -> int:
        return len(self._state_buffer)

    @property
    def gripper_state_buffer_size(self) -> int:
        return len(self._gripper_state_buffer)
