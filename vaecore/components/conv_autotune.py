"""Moved to `vaecore.runtime.conv_autotune` (a runtime option, not a model component); this name stays so
`from vaecore.components import conv_autotune` keeps working. It is the same module object."""

import sys

from vaecore.runtime import conv_autotune

sys.modules[__name__] = conv_autotune
