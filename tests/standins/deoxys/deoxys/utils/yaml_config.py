"""Stand-in of deoxys.utils.yaml_config: ``YamlConfig(filename).as_easydict()``."""

from __future__ import annotations

from typing import Any

import yaml


class AttrDict(dict):
    """A dict whose keys are also attributes, recursively (what easydict.EasyDict gives upstream)."""

    def __init__(self, d: Any = None, **kw: Any) -> None:
        super().__init__()
        for k, v in dict(d or {}, **kw).items():
            self[k] = v

    @staticmethod
    def _wrap(v: Any) -> Any:
        if isinstance(v, dict) and not isinstance(v, AttrDict):
            return AttrDict(v)
        if isinstance(v, (list, tuple)):
            return type(v)(AttrDict._wrap(x) for x in v)
        return v

    def __setitem__(self, k: Any, v: Any) -> None:
        super().__setitem__(k, self._wrap(v))

    def __getattr__(self, k: str) -> Any:
        try:
            return self[k]
        except KeyError:
            raise AttributeError(k) from None

    def __setattr__(self, k: str, v: Any) -> None:
        self[k] = v


class YamlConfig:
    def __init__(self, filename: str, root_dir: str | None = None) -> None:
        with open(filename) as f:
            self.config = yaml.safe_load(f)

    def keys(self):
        return self.config.keys()

    def __contains__(self, key: str) -> bool:
        return key in self.config

    def __getitem__(self, key: str) -> Any:
        return self.config[key]

    def as_easydict(self) -> AttrDict:
        return AttrDict(self.config)


def load_yaml_config(yaml_file_name: str) -> AttrDict:
    return YamlConfig(yaml_file_name).as_easydict()
