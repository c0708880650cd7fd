from django.apps import AppConfig
from django.core import checks
from django.db.models.signals import post_delete


def check_trigger_places(app_configs, **kwargs) -> list[checks.Error]:
    """Refuse to start (migrate, runworker, runtriggers) on folder roots or S3 connections that cannot be used."""
    from flows.trigger_stores import configuration_errors, forget_configuration

    forget_configuration()
    return [checks.Error(problem, id="tileflow.E001") for problem in configuration_errors()]


class FlowsConfig(AppConfig):
    name = "flows"
    verbose_name = "Flows and executions"

    def ready(self) -> None:
        from flows import media
        from flows.models import Execution

        post_delete.connect(media.execution_deleted, sender=Execution, dispatch_uid="tileflow-execution-files")
        checks.register(check_trigger_places, "tileflow")
