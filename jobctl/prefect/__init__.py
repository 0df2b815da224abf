"""jobctl's Prefect side: the code that calls Prefect, through the one boundary
(``gateway``), for the faces above it (``jobctl.cli``, ``jobctl.api``).

Imports are absolute, so ``import prefect`` in here is still Prefect itself.
"""
