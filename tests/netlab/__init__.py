"""The network lab: namespaces, links, faults and services for end-to-end tests."""
