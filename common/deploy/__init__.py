"""Shipping a trained artifact to a hosting platform: `python -m common.deploy sagemaker ...`.

`tarball` packs an artifact directory into the `model.tar.gz` that hosting platforms unpack
into the container's model directory; `sagemaker` creates (or updates) a SageMaker real-time
endpoint serving it. Only `sagemaker` needs boto3 (the `deploy` extra).
"""
