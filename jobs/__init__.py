"""The JobService: every job lives in a module of this package, registered with ``@job``.

Add a module here and import it below; nothing else needs to change.
"""

from jobs import examples, reports

__all__ = ["examples", "reports"]
