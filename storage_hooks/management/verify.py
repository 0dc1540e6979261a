"""Moved to :mod:`storage_hooks.ops.verify`; kept importable."""

from ..ops.verify import Problem, VerifyReport, remote_rows, verify_remote

__all__ = ["Problem", "VerifyReport", "remote_rows", "verify_remote"]
