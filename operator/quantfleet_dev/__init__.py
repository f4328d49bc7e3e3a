"""Development tooling of quantfleet: the local sandbox, test helpers, readers of pinned upstream sources.

Never shipped in the operator image and never imported by the operator (import-linter enforces it).
"""
