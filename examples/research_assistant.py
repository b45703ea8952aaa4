"""``examples.research_assistant``: the older name of :mod:`workbench.examples.research_assistant`.

Executions recorded before the example moved into the package name the entrypoint
``examples.research_assistant:research``, and replay imports that path again. This module makes
the name refer to the packaged module itself rather than a copy, so its steps are defined once.
"""

import sys

from workbench.examples import research_assistant

sys.modules[__name__] = research_assistant
