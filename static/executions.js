// The executions page: choosing a status filters at once (the policy allows no inline handler).
const statusFilter = document.getElementById("status-filter");
statusFilter?.addEventListener("change", () => statusFilter.form.requestSubmit());
