from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    name = "console"
    verbose_name = "Tileflow console"

    def ready(self) -> None:
        from console.handler import stream_body_of
        from console.inline_middleware import run_stock_middleware_inline

        # Before any handler loads its middleware (Daphne's ASGI app, the test suite's live servers).
        run_stock_middleware_inline()
        # /run decodes its upload while it arrives and answers before it ends (flows.streamed_run).
        stream_body_of("api-1:run_flow")
        # A batch's multipart body is parsed while it arrives, each image written as it comes (flows.api_batches).
        stream_body_of("api-1:create_batch")
