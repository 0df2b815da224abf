"""``jobctl-warm``: a Prefect worker type that forks each flow run from a warm template.

Prefect's process worker starts two fresh interpreters per run, each importing Prefect; this
worker keeps one template process that has imported Prefect's engine, ``flows.registered``
and the ``jobs`` package, and forks every flow process from it. The modules:

- ``worker``: the worker class, the ``prefect.collections`` entry point (imports cheaply);
- ``template``: the template's lifetime, in the worker process;
- ``preload``: what the template imports;
- ``child``: what a forked flow process does.
"""
