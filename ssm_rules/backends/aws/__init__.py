"""The ``aws`` backend: boto3 → SageMaker, CloudWatch Logs and S3. boto3 is used only here.

- :mod:`.context`: resolve region, credentials, account, role and bucket once per run.
- :mod:`.validation`: check a request against botocore's SageMaker service model.
- :mod:`.service`: :class:`~.service.AwsBackend` (submit, poll, stop, logs).
- :mod:`.polling`: one status round for many jobs in O(1) List calls per job type.
- :mod:`.cwlogs`: a job's CloudWatch log events, read whole or incrementally.

Nothing here imports boto3 at import time of ``ssm_rules``: Snakemake imports the plugin on
every call, and boto3 is heavy.
"""
