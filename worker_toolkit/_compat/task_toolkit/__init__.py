"""Old package name of simple-sagemaker's worker library (``from task_toolkit import algo_lib``).

The launcher puts worker_toolkit/_compat on PYTHONPATH, so pre-0.9 workers run unmodified.
"""
