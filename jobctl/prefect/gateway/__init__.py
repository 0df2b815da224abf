"""The one boundary to Prefect's API.

Every call jobctl makes to Prefect goes through a ``PrefectGateway`` (``interface``):
``client.ClientGateway`` over a real server, opened by the faces with ``client.connect``
and passed down, or the tests' in-memory fake. It owns the client, the paging and the
errors. ``in_flow`` holds the few calls a flow run makes about itself, ``connection``
where the API is and its health check, ``payloads`` what the sync writes.

Only the interface is imported here: a flow process need not load the client's side.
"""

from jobctl.prefect.gateway.interface import Connect, PrefectGateway

__all__ = ["Connect", "PrefectGateway"]
