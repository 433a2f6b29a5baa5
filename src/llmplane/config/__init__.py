"""Settings (environment) and the declarative platform file ``llmplane.yaml``."""

from llmplane.config.platform import (
    DeploymentConfig,
    ModelConfig,
    PlatformConfig,
    Price,
    load_platform_config,
)
from llmplane.config.settings import Settings

__all__ = [
    "DeploymentConfig",
    "ModelConfig",
    "PlatformConfig",
    "Price",
    "Settings",
    "load_platform_config",
]
