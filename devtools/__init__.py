"""Tools for working on wxtoken locally: the WeChat stand-in, the local loop, invoke, play.

They import the shared package as the functions do, from the layer's directory, so that
``python -m devtools.<tool>`` works from the repository root without installing it.
"""

import sys
from pathlib import Path

_LAYER = str(Path(__file__).resolve().parents[1] / "layers" / "wxtoken")
if _LAYER not in sys.path:
    sys.path.append(_LAYER)
