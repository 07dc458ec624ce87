from .yaml_config import YamlConfig, load_yaml_config

__all__ = ["YamlConfig", "load_yaml_config"]
