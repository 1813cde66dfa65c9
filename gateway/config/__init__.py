"""The gateway's configuration (docs/configuration.md): the embedded defaults
(defaults.toml), a TOML file over them, environment overrides, each value converted and
checked, every problem reported at once.

    config = load_config(path, os.environ)   # raises ConfigError

`schema` holds the typed objects, `values` the converters, `loader` the steps, and `legs`
the settings of one call leg built from them.
"""

from gateway.config.email import EmailConfig, SmtpServer
from gateway.config.loader import DEFAULT_CONFIG, load_config, parse_config
from gateway.config.schema import (
    AccessConfig,
    AdminConfig,
    ConfigError,
    DemoConfig,
    GatewayConfig,
    HttpConfig,
    IceConfig,
    IceServer,
    LimitsConfig,
    LogConfig,
    MediaConfig,
    NotificationsConfig,
    RingbackTone,
    SipConfig,
    SiteConfig,
    StorageConfig,
)

__all__ = [
    "DEFAULT_CONFIG",
    "AccessConfig",
    "AdminConfig",
    "ConfigError",
    "DemoConfig",
    "EmailConfig",
    "GatewayConfig",
    "HttpConfig",
    "IceConfig",
    "IceServer",
    "LimitsConfig",
    "LogConfig",
    "MediaConfig",
    "NotificationsConfig",
    "RingbackTone",
    "SipConfig",
    "SiteConfig",
    "SmtpServer",
    "StorageConfig",
    "load_config",
    "parse_config",
]
