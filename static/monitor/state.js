// One execution's live state, fed by websocket frames (CONTRACT §4) and REST answers.

export const FINISHED = ["succeeded", "failed", "cancelled"];

export class ExecutionState {
  constructor(execution) {
    this.execution = structuredClone(execution);
    this.execution.nodes ||= {};
  }

  get finished() {
    return FINISHED.includes(this.execution.status);
  }

  // Apply a websocket message; returns the list of node ids whose state changed.
  apply(message) {
    if (message.type === "snapshot") {
      this.execution = structuredClone(message.execution);
      this.execution.nodes ||= {};
      return Object.keys(this.execution.nodes);
    }
    if (message.type === "progress") {
      const node = (this.execution.nodes[message.node] ||= { status: "pending", done: 0, total: 0 });
      node.done = Math.max(node.done || 0, message.done); // done never decreases, even if frames cross
      node.total = message.total;
      if (node.status !== "failed") node.status = node.total && node.done >= node.total ? "done" : "running";
      if (this.execution.status === "queued") this.execution.status = "running";
      return [message.node];
    }
    if (message.type === "status") {
      this.execution.status = message.status;
      this.execution.error = message.error ?? this.execution.error;
      return Object.keys(this.execution.nodes);
    }
    return [];
  }

  // What a node shows: its reported state, or one implied by the run's status. A run that stopped leaves its
  // unfinished nodes failed (it failed) or cancelled (it was cancelled); a node that never started stays pending
  // after a failure, but is cancelled with its run.
  nodeState(id) {
    const status = this.execution.status;
    const node = this.execution.nodes[id] || { status: "pending", done: 0, total: 0 };
    if (status === "succeeded") return { ...node, status: "done" };
    if (!this.finished || node.status === "done" || node.status === "failed") return node;
    if (status === "cancelled") return { ...node, status: "cancelled" };
    return node.status === "running" ? { ...node, status: "failed" } : node;
  }
}
