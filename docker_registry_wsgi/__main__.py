"""``python -m docker_registry_wsgi serve``."""

import sys

from .cli import main

sys.exit(main())
