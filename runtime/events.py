"""Every message type and channel name of the stream bridge, listed once.

Channels dispatches a message of type "tile.task" to a consumer's `tile_task` method; the names
here are the only ones the runtime sends.
"""

# Conductor → lane (any worker listening on the lane's channel): run one task.
TILE_TASK = "tile.task"
# Worker → conductor: a task starts now, after waiting in the lane for a good part of its lease
# (sent only then: a lease counts from the start, and a short wait needs no message).
TILE_TAKEN = "tile.taken"
# Worker → conductor: the tiles a task produced, with per-node busy times.
TILE_DONE = "tile.done"
# Worker → conductor: a step raised while running a task.
TILE_FAILED = "tile.failed"
# Anyone → conductor (through the run's control group): stop the run.
RUN_CANCEL = "run.cancel"
# Conductor → websocket consumers (through the execution's group).
EXECUTION_PROGRESS = "execution.progress"
EXECUTION_STATUS = "execution.status"

LANE_CHANNEL_PREFIX = "tileflow.lane."


def lane_channel(lane: str) -> str:
    """Return the channel that workers of `lane` receive tasks on."""
    return LANE_CHANNEL_PREFIX + lane


def execution_group(execution_id: str) -> str:
    """Return the group that websocket consumers of one execution join."""
    return f"tileflow.execution.{execution_id}"


def run_control_group(execution_id: str) -> str:
    """Return the group the conductor of one execution listens to for control messages."""
    return f"tileflow.run.{execution_id}"


# Batch driver → websocket consumers of one batch (through the batch's group).
BATCH_PROGRESS = "batch.progress"
BATCH_STATUS = "batch.status"


def batch_group(batch_id: str) -> str:
    """Return the group that websocket consumers of one batch join."""
    return f"tileflow.batch.{batch_id}"
