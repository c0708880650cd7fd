from django.apps import AppConfig
from django.db.models.signals import post_delete


class FlowsConfig(AppConfig):
    name = "flows"
    verbose_name = "Flows and executions"

    def ready(self) -> None:
        from flows import media
        from flows.models import Execution

        post_delete.connect(media.execution_deleted, sender=Execution, dispatch_uid="tileflow-execution-files")
