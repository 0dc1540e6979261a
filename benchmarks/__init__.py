"""Benchmarks of storage_hooks against its baselines; run ``make bench``.

Nothing here is part of the library or of the test suite. Every script
measures ratios within one run on this machine, against real services:
PostgreSQL, Redis, moto's S3 server and Celery workers.
"""
