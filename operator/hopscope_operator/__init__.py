"""The hopscope operator: ConnectivityCheck resources in, probe pods out, diagnoses in status."""
