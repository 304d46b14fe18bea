"""Data plane: BPF programs for directors and proxies, loaded and fed by the agent via bcc."""
