"""Operator tests: the CRD and its models, handlers against an in-memory API."""
