// Undo/redo over snapshots of the flow graph: simple, and exact whatever the edit was.

export class History {
  constructor(limit = 200) {
    this.limit = limit;
    this.past = [];
    this.future = [];
    this.present = null;
  }

  reset(snapshot) {
    this.past = [];
    this.future = [];
    this.present = JSON.stringify(snapshot);
  }

  // Record a new state; returns false when nothing changed.
  push(snapshot) {
    const text = JSON.stringify(snapshot);
    if (text === this.present) return false;
    if (this.present !== null) this.past.push(this.present);
    if (this.past.length > this.limit) this.past.shift();
    this.present = text;
    this.future = [];
    return true;
  }

  undo() {
    if (!this.past.length) return null;
    this.future.push(this.present);
    this.present = this.past.pop();
    return JSON.parse(this.present);
  }

  redo() {
    if (!this.future.length) return null;
    this.past.push(this.present);
    this.present = this.future.pop();
    return JSON.parse(this.present);
  }

  get canUndo() {
    return this.past.length > 0;
  }

  get canRedo() {
    return this.future.length > 0;
  }
}
