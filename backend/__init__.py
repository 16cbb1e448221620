"""AtlasVAE backend: the model, its training and the stdio server the Blender add-on drives.

This package must import without torch so that light tools (protocol, version) stay cheap;
modules that need torch import it themselves.
"""

__version__ = "0.1.0"
PROTOCOL_VERSION = 1
