"""The install generators: the CRD (`python -m hopscope_operator.install.crd`), the Helm chart
with its RBAC, examples and sidecar patch (`python -m hopscope_operator.install.chart`), and the
monitoring objects. Nothing outside this package imports it: running code takes its names from
`hopscope_operator.names`."""
