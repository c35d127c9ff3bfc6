from merpati.config.loader import ConfigError, default_config_path, load_config
from merpati.config.schema import Config

__all__ = ["Config", "ConfigError", "default_config_path", "load_config"]
