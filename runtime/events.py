"""Every message type and channel name of the stream bridge, listed once.

Channels dispatches a message of type "tile.task" to a consumer's `tile_task` method; the names
here are the only ones the runtime sends.
"""

import uuid

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
# Placed runs (Redis layer): a console offers a run on the runs lane, one worker with room conducts it.
# Console → runs lane: a run to take (its plan and the keys of its input's pieces, runtime.blobs).
RUN_OFFER = "run.offer"
# Worker → console: this worker takes the offer (the first claim of an attempt wins).
RUN_CLAIMED = "run.claimed"
# Console → worker: the run is taken by another worker (or ended); stop it. Also the answer to a
# run.alive or run.done of a run that is no longer the worker's, so a drop or cancel lost with Redis
# is repeated with the worker's next heartbeat (runtime.placement.disown).
RUN_DROP = "run.drop"
# Worker → console: the run's outputs exist (node, file name, content type).
RUN_PREPARED = "run.prepared"
# Worker → console: encoded bytes of one output, from an offset (the key of a blob holding them).
RUN_OUTPUT = "run.output"
# Console → worker: send the outputs again from these offsets (messages were lost).
RUN_RESEND = "run.resend"
# Worker → console: a progress snapshot to save (the run's heartbeat on the console's side).
RUN_SNAPSHOT = "run.snapshot"
# Worker → console: the worker still conducts the run (its lease), sent with every worker heartbeat.
RUN_ALIVE = "run.alive"
# Worker → console: the run's input pieces are gone from Redis (a restart): offer it again, input included.
RUN_INPUT_GONE = "run.input_gone"
# Worker → console: the worker is stopping and gives the run back unfinished: offer it again at once.
RUN_RELEASED = "run.released"
# Worker → console: the run ended; its final snapshot and output sizes.
RUN_DONE = "run.done"
# Console → worker: the end was recorded; the worker may forget the run.
RUN_ACK = "run.ack"
# Conductor → websocket consumers (through the execution's group).
EXECUTION_PROGRESS = "execution.progress"
EXECUTION_STATUS = "execution.status"

LANE_CHANNEL_PREFIX = "tileflow.lane."
RUNS_CHANNEL = "tileflow.runs"  # the runs lane: every worker takes runs from it when it has room


def private_channel(prefix: str) -> str:
    """Return a new channel name only its creator receives on (a process's placed runs, a hosted run).

    Not the layer's `new_channel`: channels_redis serves all of a process's `!` channels through one
    shared receive loop, which after a Redis restart could leave a run's replies unread. A plain
    name of its own is read directly, and each receive call reconnects by itself.
    """
    return f"{prefix}{uuid.uuid4().hex}"


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
