"""Long-running agents (director daemon)."""
