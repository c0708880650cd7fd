"""A real S3-compatible HTTP server for tests: moto's standalone server on a loopback port, driven with boto3.

Credentials are checked: the server starts with authentication on after the few calls that create
one IAM user and its key, so a wrong key is refused as a real store refuses it.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.services import PYTHON, free_port, stop, wait_for_port

REGION = "us-east-1"
# Calls moto serves before it checks credentials: create the user, its key and its policy.
SETUP_CALLS = 3
ALLOW_ALL = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


class S3Server:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.access_key = ""
        self.secret_key = ""

    def start(self) -> None:
        env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(SETUP_CALLS), "MOTO_CALL_RESET_API": "false"}
        with (self.workdir / "moto.log").open("ab") as sink:
            self.process = subprocess.Popen(
                [PYTHON, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        wait_for_port(self.port, timeout=60, process=self.process)
        iam = self._client("iam", "setup", "setup")
        iam.create_user(UserName="tileflow")
        key = iam.create_access_key(UserName="tileflow")["AccessKey"]
        iam.put_user_policy(UserName="tileflow", PolicyName="all", PolicyDocument=json.dumps(ALLOW_ALL))
        self.access_key, self.secret_key = key["AccessKeyId"], key["SecretAccessKey"]

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)

    def _client(self, service: str, access_key: str, secret_key: str):
        import boto3

        return boto3.session.Session().client(
            service,
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
        )

    def client(self):
        """Return a boto3 S3 client with the server's valid key."""
        return self._client("s3", self.access_key, self.secret_key)

    def connection(self, **overrides: str) -> dict[str, str]:
        """Return one entry of TILEFLOW_S3_CONNECTIONS for this server."""
        return {
            "endpoint_url": self.url,
            "region": REGION,
            "access_key": self.access_key,
            "secret_key": self.secret_key,
            **overrides,
        }

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(entry["Key"] for page in pages for entry in page.get("Contents", []))

    def remove_bucket(self, bucket: str) -> None:
        client = self.client()
        for key in self.keys(bucket):
            client.delete_object(Bucket=bucket, Key=key)
        client.delete_bucket(Bucket=bucket)


@contextmanager
def s3_server(workdir: Path) -> Iterator[S3Server]:
    server = S3Server(workdir)
    try:
        server.start()
        yield server
    finally:
        server.stop()
