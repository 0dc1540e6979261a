"""django-queued-storage 0.8, measured on the same files and S3 server.

Its code runs in its own Python 3.8 environment (``benchmarks/.envs/dqs``,
made by ``bench_legacy.py`` when missing) with Django 3.2 and Celery 4.4.
Everything in this folder except ``bench_legacy.py``'s caller side must
stay valid Python 3.8.
"""

#: A key in each Redis database the comparison uses, set as soon as the
#: database is taken: other runs on the same Redis (benchmarks, the quick
#: start test) take only empty databases, and flush them when they finish.
CLAIM = "benchmarks:claimed"
