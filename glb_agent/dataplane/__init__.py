"""Data plane: BPF programs for directors and proxies, compiled by bcc and driven by the
agent through one userspace BPF layer (``bpfcore``, docs/dataplane-bpf-layer.md)."""
