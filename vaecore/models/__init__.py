"""Model families: each module defines its config, its class and registers its presets."""

from vaecore.models import base, tvae  # noqa: F401
