"""Admin pages: flows, executions (read-only records of runs) and API tokens (revocable, never editable)."""

import json

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html

from flows.models import ApiToken, Execution, ExecutionOutput, Flow


def pretty_json(value: object) -> str:
    """Show a JSON field indented, read-only: editing a graph here would bypass validation."""
    return format_html("<pre style='margin:0'>{}</pre>", json.dumps(value, indent=2, ensure_ascii=False))


@admin.register(Flow)
class FlowAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "version", "node_count", "updated_at"]
    list_filter = ["owner"]
    search_fields = ["name", "description", "owner__username"]
    readonly_fields = ["id", "owner", "name", "description", "version", "graph_json", "created_at", "updated_at"]
    fields = ["id", "owner", "name", "description", "version", "graph_json", "created_at", "updated_at"]

    @admin.display(description="nodes")
    def node_count(self, flow: Flow) -> int:
        nodes = flow.graph.get("nodes") if isinstance(flow.graph, dict) else None
        return len(nodes) if isinstance(nodes, list) else 0

    @admin.display(description="graph")
    def graph_json(self, flow: Flow) -> str:
        return pretty_json(flow.graph)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # flows are made through the API or the editor, where their graph is validated

    def has_change_permission(self, request: HttpRequest, obj: Flow | None = None) -> bool:
        return False  # for the same reason; the admin may look and delete


class ExecutionOutputInline(admin.TabularInline):
    model = ExecutionOutput
    fields = ["node", "content_type", "size", "width", "height", "complete"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Execution | None = None) -> bool:
        return False


@admin.register(Execution)
class ExecutionAdmin(admin.ModelAdmin):
    list_display = ["id", "status", "flow_link", "owner", "created_at", "duration"]
    list_filter = ["status", "owner"]
    search_fields = ["id", "flow_name", "owner__username", "input_name"]
    date_hierarchy = "created_at"
    inlines = [ExecutionOutputInline]
    json_fields = ["graph", "nodes", "timeline"]

    def get_readonly_fields(self, request: HttpRequest, obj: Execution | None = None) -> list[str]:
        # A record of what happened: every field is shown, none is editable.
        names = [field.name for field in Execution._meta.fields if field.name not in self.json_fields]
        return [*names, "duration", *(f"{name}_json" for name in self.json_fields)]

    def get_fields(self, request: HttpRequest, obj: Execution | None = None) -> list[str]:
        return self.get_readonly_fields(request, obj)

    @admin.display(description="flow", ordering="flow_name")
    def flow_link(self, execution: Execution) -> str:
        return f"{execution.flow_name or execution.flow_id or '-'} (v{execution.flow_version})"

    @admin.display(description="duration")
    def duration(self, execution: Execution) -> str:
        if execution.started_at is None:
            return "-"
        end = execution.finished_at or timezone.now()
        return f"{(end - execution.started_at).total_seconds():.2f} s" + ("" if execution.finished_at else " (running)")

    @admin.display(description="graph")
    def graph_json(self, execution: Execution) -> str:
        return pretty_json(execution.graph)

    @admin.display(description="nodes")
    def nodes_json(self, execution: Execution) -> str:
        return pretty_json(execution.nodes)

    @admin.display(description="timeline")
    def timeline_json(self, execution: Execution) -> str:
        return pretty_json(execution.timeline)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Execution | None = None) -> bool:
        return False


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["prefix", "name", "owner", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["owner", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["prefix", "name", "owner__username"]
    fields = ["prefix", "name", "owner", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "owner", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a token's text is shown once, by `manage.py createtoken`

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {count} token(s).", messages.SUCCESS)
