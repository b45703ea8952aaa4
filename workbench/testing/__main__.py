"""``python -m workbench.testing``: the test model server's command, under its older name.

Kept so scripts written before the server moved to :mod:`workbench.testmodel` keep working; the
command itself is ``workbench.testmodel.__main__``.
"""

from __future__ import annotations

import sys

from workbench.testmodel.__main__ import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m workbench.testing"))
