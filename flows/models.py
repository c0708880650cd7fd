"""What Tileflow stores: flows (versioned graphs), executions (persisted runs) and API tokens."""

from __future__ import annotations

import hashlib
import secrets
import uuid

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Flow(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="flows")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    graph = models.JSONField()
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="flow_name_unique_per_owner")]

    def __str__(self) -> str:
        return f"{self.name} (v{self.version})"


class FlowVersion(models.Model):
    """A saved state of a flow: one row per create, replace, rename and restore, never changed after."""

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    graph = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    restored_from = models.PositiveIntegerField(null=True, blank=True, help_text="the version this one restored")

    class Meta:
        ordering = ["-version"]
        constraints = [models.UniqueConstraint(fields=["flow", "version"], name="one_row_per_flow_version")]

    def __str__(self) -> str:
        return f"{self.flow_id} v{self.version}"


class Execution(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", _("queued")
        RUNNING = "running", _("running")
        SUCCEEDED = "succeeded", _("succeeded")
        FAILED = "failed", _("failed")
        CANCELLED = "cancelled", _("cancelled")

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="executions")
    flow = models.ForeignKey(Flow, on_delete=models.SET_NULL, null=True, blank=True, related_name="executions")
    flow_name = models.CharField(max_length=200, blank=True, default="")
    flow_version = models.PositiveIntegerField(default=0)
    graph = models.JSONField(help_text="the graph as it ran, frozen at start")
    draft = models.BooleanField(default=False, help_text="ran an unsaved graph from the editor, not a saved version")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    first_output_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="last sign of life of the run's conductor")
    runner = models.CharField(max_length=255, blank=True, default="", help_text="host:pid of the conductor")
    error = models.TextField(null=True, blank=True)  # noqa: DJ001 - the API tells "no error" (null) from ""
    nodes = models.JSONField(default=dict, blank=True, help_text="per node: status, done, total, busy_ms, timings")
    timeline = models.JSONField(default=dict, blank=True, help_text="per node: [start_ms, end_ms] of each tile")
    retries = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0, help_text="tile results received twice and dropped")
    workers = models.JSONField(default=dict, blank=True, help_text="tiles done per worker process (host:pid)")
    input_file = models.FileField(upload_to="inputs/%Y/%m/%d/", max_length=300, blank=True)
    input_name = models.CharField(max_length=255, blank=True, default="")
    input_size = models.PositiveBigIntegerField(default=0)
    input_width = models.PositiveIntegerField(default=0)
    input_height = models.PositiveIntegerField(default=0)
    input_format = models.CharField(max_length=16, blank=True, default="")

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["owner", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.flow_name or 'flow'} · {self.status} · {self.id}"

    @property
    def finished(self) -> bool:
        return self.status in self.FINISHED


class ExecutionOutput(models.Model):
    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="outputs")
    node = models.CharField(max_length=64)
    file = models.FileField(upload_to="outputs/%Y/%m/%d/", max_length=300, blank=True)
    content_type = models.CharField(max_length=64)
    size = models.PositiveBigIntegerField(default=0)
    width = models.PositiveIntegerField(default=0)
    height = models.PositiveIntegerField(default=0)
    complete = models.BooleanField(default=False)

    class Meta:
        ordering = ["node"]
        constraints = [models.UniqueConstraint(fields=["execution", "node"], name="one_output_per_node")]

    def __str__(self) -> str:
        return f"{self.execution_id}/{self.node}"


class ApiToken(models.Model):
    """A bearer token for scripts. Only its SHA-256 is stored; the token is shown once."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True, default="")
    prefix = models.CharField(max_length=12, help_text="first characters, to tell tokens apart")
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.owner})"

    @staticmethod
    def hash(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    @classmethod
    def issue(cls, owner, name: str = "") -> tuple[ApiToken, str]:
        """Create a token for `owner`; return the row and the token text (never stored)."""
        token = "tf_" + secrets.token_urlsafe(32)
        row = cls.objects.create(owner=owner, name=name, prefix=token[:10], digest=cls.hash(token))
        return row, token


class Batch(models.Model):
    """One flow over many images: each item becomes one execution, admitted a few at a time."""

    Status = Execution.Status
    FINISHED = Execution.FINISHED

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="batches")
    flow = models.ForeignKey(Flow, on_delete=models.SET_NULL, null=True, blank=True, related_name="batches")
    flow_name = models.CharField(max_length=200, blank=True, default="")
    flow_version = models.PositiveIntegerField(default=0)
    graph = models.JSONField(help_text="the graph every item runs, frozen at creation")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    runner = models.CharField(max_length=255, blank=True, default="", help_text="host:pid driving the batch")
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="last sign of life of its driver")

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["owner", "-created_at"])]

    def __str__(self) -> str:
        return f"batch of {self.flow_name or 'flow'} · {self.status} · {self.id}"

    @property
    def finished(self) -> bool:
        return self.status in self.FINISHED


class BatchItem(models.Model):
    """One input of a batch: its name (path kept), its stored file and, once admitted, its execution."""

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="items")
    index = models.PositiveIntegerField()
    name = models.CharField(max_length=1024)
    input_file = models.CharField(max_length=300, blank=True, default="", help_text="path under MEDIA_ROOT")
    size = models.PositiveBigIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Execution.Status.choices, default=Execution.Status.QUEUED)
    error = models.TextField(null=True, blank=True)  # noqa: DJ001 - null is "no error", as for executions
    execution = models.ForeignKey(
        Execution, on_delete=models.SET_NULL, null=True, blank=True, related_name="batch_items"
    )
    attempts = models.PositiveSmallIntegerField(default=0, help_text="executions started for it (restarts)")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["batch", "index"]
        constraints = [models.UniqueConstraint(fields=["batch", "index"], name="batch_item_index_unique")]
        indexes = [models.Index(fields=["batch", "status"])]

    def __str__(self) -> str:
        return f"{self.batch_id}/{self.index} {self.name} · {self.status}"


def _trigger_secret() -> str:
    return "tfs_" + secrets.token_urlsafe(24)


class Trigger(models.Model):
    """A flow run on every new object under a source, its outputs written to a destination (CONTRACT §8)."""

    class Kind(models.TextChoices):
        FOLDER = "folder"
        S3 = "s3"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="triggers")
    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="triggers")
    type = models.CharField(max_length=16, choices=Kind.choices)
    source = models.JSONField(help_text="a location: {root, path} or {connection, bucket, prefix}")
    destination = models.JSONField()
    enabled = models.BooleanField(default=True)
    secret = models.CharField(max_length=64, default=_trigger_secret, help_text="authenticates event notifications")
    process_existing = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    watch_from = models.DateTimeField(help_text="objects older than this, seen by the first scan, are left alone")
    primed = models.BooleanField(default=False, help_text="the first scan of the source has recorded what was there")
    last_error = models.TextField(null=True, blank=True)  # noqa: DJ001 - null: no error
    last_scan_at = models.DateTimeField(null=True, blank=True)
    lease_owner = models.CharField(max_length=255, blank=True, default="", help_text="host:pid:nonce of its poller")
    lease_expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.type} trigger of {self.flow_id}"


class TriggerEvent(models.Model):
    """One object a trigger saw, and what it did with it; (trigger, key, version) is seen once."""

    class Status(models.TextChoices):
        EXISTING = "existing"  # there before the trigger: left alone, not listed
        PENDING = "pending"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        SKIPPED = "skipped"

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.SKIPPED)

    trigger = models.ForeignKey(Trigger, on_delete=models.CASCADE, related_name="events")
    key = models.CharField(max_length=1024, help_text="the object's name relative to the source")
    version = models.CharField(max_length=255, help_text="ETag, or size:mtime_ns for a file")
    size = models.PositiveBigIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    execution = models.ForeignKey(Execution, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    error = models.TextField(null=True, blank=True)  # noqa: DJ001 - null: no error
    attempts = models.PositiveIntegerField(default=0, help_text="reads or deliveries that failed for the store")
    retry_at = models.DateTimeField(null=True, blank=True, help_text="a failed read or delivery is tried again then")
    outputs = models.JSONField(default=list, blank=True, help_text="where the outputs were written")
    seen_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-seen_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["trigger", "key", "version"], name="trigger_object_seen_once"),
        ]
        indexes = [models.Index(fields=["trigger", "status"])]

    def __str__(self) -> str:
        return f"{self.key} · {self.status}"
