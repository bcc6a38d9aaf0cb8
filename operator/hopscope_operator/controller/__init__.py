"""The controller: kopf handlers (thin), the reconcile tick, probe pod planning and
collection, resolution, the status writer, API snapshots and caches, sidecar agents, the
schedule and metrics. Running code: it imports the analysis and the shared contracts below it,
never the install generators or the kubectl plugin."""
