// The question asked before a flow is deleted, on the home page and in the editor: its triggers go with it.
import { api } from "./api.js";
import { confirmAction } from "./dialog.js";
import { gettext, interpolate, ngettext } from "./i18n.js";

// Resolve true when the user confirms deleting the flow; the triggers it has are counted and named in the question.
export async function confirmFlowDelete(flowId, name) {
  let count = null;
  try {
    count = (await api.triggers(flowId)).length;
  } catch {
    // Not counted: the question still says that its triggers go.
  }
  let message;
  if (count === 0) message = interpolate(gettext("Delete the flow “%(name)s”? Its executions stay, with the graph they ran."), { name });
  else if (count === null) message = interpolate(gettext("Delete the flow “%(name)s”? Its triggers stop and are deleted too; its executions stay, with the graph they ran."), { name });
  else {
    const text = ngettext(
      "Delete the flow “%(name)s”? Its %(count)s trigger stops and is deleted too; its executions stay, with the graph they ran.",
      "Delete the flow “%(name)s”? Its %(count)s triggers stop and are deleted too; its executions stay, with the graph they ran.",
      count,
    );
    message = interpolate(text, { name, count });
  }
  return confirmAction(message, gettext("Delete flow"));
}
